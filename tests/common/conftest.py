"""Helpers for the runtime tests: run the toy MLP job in-process or as a subprocess."""
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
TOY = os.path.join(HERE, "toy_train.py")
TOY_CONFIG = os.path.join(HERE, "toy_config.py")


def toy_cmd(workdir, *overrides, variant=None):
  config = TOY_CONFIG + (f":{variant}" if variant else "")
  return [sys.executable, TOY, f"--config={config}", f"--workdir={workdir}", *overrides]


@pytest.fixture
def run_toy():
  """Runs the toy job to completion in a subprocess; returns CompletedProcess (text)."""

  def run(workdir, *overrides, variant=None, check=True):
    env = dict(os.environ, PYTHONPATH=ROOT)
    proc = subprocess.run(toy_cmd(workdir, *overrides, variant=variant), capture_output=True,
                          text=True, env=env, timeout=300)
    if check and proc.returncode != 0:
      raise AssertionError(f"toy job failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc

  return run
