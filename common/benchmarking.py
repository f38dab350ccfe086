"""Benchmark protocol shared by the `<pkg>.bench` commands: equal threads, an idle machine.

* `pin_threads(n)`: restricts this process to n CPUs (sched_setaffinity) and sets the thread-count
  variables of the BLAS/OpenMP runtimes, before JAX or PyTorch is imported. XLA:CPU sizes its
  thread pool from the schedulable CPUs, and PyTorch gets `torch.set_num_threads(n)` from the
  caller, so both sides of a comparison run on the same n cores.
* `LoadMonitor`: samples the 1-minute load average during a run; `refuse_if_loaded` stops a
  benchmark from writing its result when the machine was busy (load above `max_load`, 1.5 on the
  2-core development machines): a timing taken under load measures the load, not the code.
"""
from __future__ import annotations

import os
import sys

IDLE_LOAD = 1.5
_THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def pin_threads(n: int) -> list[int]:
  """Restricts this process to its first n schedulable CPUs; returns them. Call before jax/torch."""
  cpus = sorted(os.sched_getaffinity(0))
  if not 1 <= n <= len(cpus):
    raise SystemExit(f"--threads={n} is invalid: allowed 1..{len(cpus)} (CPUs available to this process)")
  os.sched_setaffinity(0, cpus[:n])
  for var in _THREAD_VARS:
    os.environ[var] = str(n)
  return cpus[:n]


class LoadMonitor:
  """Records the 1-minute load average at `sample()` calls (start, between cases, end)."""

  def __init__(self):
    self.samples: list[float] = []
    self.sample()

  def sample(self) -> float:
    load = os.getloadavg()[0]
    self.samples.append(load)
    return load

  @property
  def max(self) -> float:
    return max(self.samples)

  def record(self) -> dict:
    return {"load_avg_samples": [round(x, 2) for x in self.samples], "load_avg_max": round(self.max, 2)}


def refuse_if_loaded(monitor: LoadMonitor, out: str, max_load: float = IDLE_LOAD) -> None:
  """Exits with code 2, writing nothing, when the load average exceeded max_load during the run."""
  monitor.sample()
  if monitor.max > max_load:
    print(f"refusing to write {out}: the 1-minute load average reached {monitor.max:.2f} during the run "
          f"(allowed <= {max_load}); rerun on an idle machine", file=sys.stderr)
    raise SystemExit(2)
