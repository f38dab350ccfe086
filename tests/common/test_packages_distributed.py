"""Data parallelism and multi-host, proven on every package's real train step.

Per package, one subprocess with 4 CPU devices (distributed_check.py): the tiny config's
train_and_evaluate on 1 device vs 4 devices (every step's loss), and a checkpoint written on 4
devices resumed on 1, then on 4 again, ending with the same parameters as the 1-device run.
Multi-host: two processes on localhost (jax.distributed, gloo) run growth's tiny loop, match a
single process, and their checkpoint resumes in one process.
"""
import os
import socket
import subprocess
import sys

import pytest

from tests.common import conftest

HERE = os.path.dirname(os.path.abspath(__file__))


def _env(devices):
  # LLVM optimisation level 0: the checks compare 1 vs 4 devices (and 2 processes vs 1) under the
  # same flags, and compile time dominates these few-step runs (g2's check: 189 s -> 84 s wall
  # together with its smaller test config).
  env = dict(os.environ, PYTHONPATH=conftest.ROOT, JAX_PLATFORMS="cpu",
             XLA_FLAGS=f"--xla_force_host_platform_device_count={devices} "
                       "--xla_backend_optimization_level=0")
  env.pop("COMMON_HOST_TUNING", None)
  return env


@pytest.mark.slow
@pytest.mark.parametrize("pkg", ["bk", "g2", "growth", "jepa", "nsm"])
def test_package_train_step_on_4_devices_matches_1_and_resumes_across_counts(pkg, tmp_path):
  proc = subprocess.run([sys.executable, os.path.join(HERE, "distributed_check.py"), pkg,
                         str(tmp_path)], capture_output=True, text=True, env=_env(4), timeout=600)
  assert proc.returncode == 0 and f"DISTRIBUTED-OK {pkg}" in proc.stdout, (
      proc.stdout[-2000:] + proc.stderr[-4000:])


def _free_port():
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_match_one_and_their_checkpoint_restores_in_one(tmp_path):
  script = os.path.join(HERE, "multihost_check.py")
  port = str(_free_port())
  workers = [subprocess.Popen([sys.executable, script, "worker", str(i), str(tmp_path), port],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=_env(2)) for i in range(2)]
  outs = []
  for w in workers:
    try:
      outs.append(w.communicate(timeout=600))
    finally:
      if w.poll() is None:
        w.kill()
  for i, (w, (out, err)) in enumerate(zip(workers, outs)):
    assert w.returncode == 0 and f"WORKER-OK {i}" in out, out[-2000:] + err[-4000:]
  proc = subprocess.run([sys.executable, script, "single", str(tmp_path)], capture_output=True,
                        text=True, env=_env(1), timeout=600)
  assert proc.returncode == 0 and "MULTIHOST-OK" in proc.stdout, (
      proc.stdout[-2000:] + proc.stderr[-4000:])
