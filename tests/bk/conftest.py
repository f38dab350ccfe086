"""Shared fixtures for the bk tests: float64 on demand (never at import of library code)."""
import jax
import numpy as np
import pytest


@pytest.fixture
def x64():
  """Enable float64 for one test and restore the previous setting afterwards."""
  previous = jax.config.jax_enable_x64
  jax.config.update("jax_enable_x64", True)
  yield
  jax.config.update("jax_enable_x64", previous)


def _random_tridiagonal(rng: np.random.Generator, batch: tuple, n: int, *, v_max: float = 3.0,
                        k_zeros: bool = False):
  """a = -2 + v (v ~ U(-v_max, v_max)), b, c ~ U(0.2, 2) (optionally with k = 0 breaks)."""
  a = -2.0 + rng.uniform(-v_max, v_max, batch + (n,))
  b = rng.uniform(0.2, 2.0, batch + (max(n - 1, 0),))
  c = rng.uniform(0.2, 2.0, batch + (max(n - 1, 0),))
  if k_zeros and n > 2:
    b[..., (n - 1) // 2] = 0.0
  return a, b, c


@pytest.fixture
def random_tridiagonal():
  """The generator above as a fixture (test modules never import conftest directly)."""
  return _random_tridiagonal
