"""Fixtures for the nsm tests: float64 on demand (never at import of library code)."""
import jax
import pytest


@pytest.fixture
def x64():
  """Enable float64 for one test and restore the previous setting afterwards."""
  previous = jax.config.jax_enable_x64
  jax.config.update("jax_enable_x64", True)
  yield
  jax.config.update("jax_enable_x64", previous)
