"""Shared fixtures of the jepa tests (float64 only where a test module asks for it)."""
import pytest

from configs import jepa as jepa_configs


@pytest.fixture
def tiny_config():
  return jepa_configs.get_config("tiny")
