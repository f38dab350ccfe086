"""Shared fixtures for the g2 tests: float64 per test module (never at library import)."""
import jax
import numpy as np
import pytest


@pytest.fixture(scope="module")
def x64():
  """Enables float64 for one test module and restores the previous setting afterwards."""
  previous = jax.config.jax_enable_x64
  jax.config.update("jax_enable_x64", True)
  yield
  jax.config.update("jax_enable_x64", previous)


@pytest.fixture
def rng():
  return np.random.default_rng(0)


@pytest.fixture
def gl_plus(rng):
  """Draws random 7x7 matrices near the identity with positive determinant."""
  def draw(scale=0.3):
    a = np.eye(7) + scale * rng.normal(size=(7, 7))
    if np.linalg.det(a) < 0:
      a[0] *= -1
    return a
  return draw
