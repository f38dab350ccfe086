"""Benchmark protocol shared by the `<pkg>.bench` commands: equal threads, an idle machine.

* `pin_threads(n)`: restricts this process to n CPUs (sched_setaffinity) and sets the thread-count
  variables of the BLAS/OpenMP runtimes, before JAX or PyTorch is imported. XLA:CPU sizes its
  thread pool from the schedulable CPUs, and PyTorch gets `torch.set_num_threads(n)` from the
  caller, so both sides of a comparison run on the same n cores.
* `LoadMonitor`: samples the 1-minute load average and measures the CPU time of *other*
  processes during a run; `refuse_if_loaded` stops a benchmark from writing its result when the
  machine was busy (load above `max_load`, 1.5 on the 2-core development machines, at the start,
  or other processes using > 0.25 cores on average while it ran): a timing taken under load
  measures the load, not the code. The load average alone cannot judge the run itself, since it
  counts the benchmark's own busy threads.
"""
from __future__ import annotations

import os
import sys

IDLE_LOAD = 1.5
MAX_FOREIGN_CORES = 0.25  # other processes' mean CPU use allowed during a benchmark
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


def _cpu_jiffies() -> tuple[int, int]:
  """(busy jiffies of the whole machine, jiffies of this process and all its descendants).

  Busy = user + nice + system + irq + softirq of /proc/stat's `cpu` line (steal time is the
  hypervisor's, not this machine's processes'). Own = utime + stime + cutime + cstime of this
  process and of every live descendant (children that exited and were waited for are in their
  parent's cutime/cstime)."""
  with open("/proc/stat") as f:
    fields = [int(x) for x in f.readline().split()[1:]]
  busy = fields[0] + fields[1] + fields[2] + fields[5] + fields[6]
  parent, ticks = {}, {}
  for entry in os.listdir("/proc"):
    if not entry.isdigit():
      continue
    try:
      with open(f"/proc/{entry}/stat") as f:
        stat = f.read()
    except OSError:  # exited meanwhile
      continue
    rest = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) "
    pid = int(entry)
    parent[pid] = int(rest[1])
    ticks[pid] = sum(int(x) for x in rest[11:15])  # utime stime cutime cstime
  me, own = os.getpid(), 0
  for pid, t in ticks.items():
    p, seen = pid, 0
    while p > 1 and seen < 64:
      if p == me:
        own += t
        break
      p, seen = parent.get(p, 0), seen + 1
  return busy, own


class LoadMonitor:
  """Records the machine's idleness during a benchmark.

  * the 1-minute load average at `sample()` calls (start, between cases, end). Only the first
    sample judges the machine: later ones include the benchmark's own busy threads.
  * the CPU time used by *other* processes between construction and each sample: machine busy
    time (/proc/stat) minus this process tree's time, in CPU cores on average over the run
    (`foreign_cores`). 0 on an idle machine whatever the benchmark itself uses.
  """

  def __init__(self):
    self.samples: list[float] = []
    self.foreign: list[float] = []
    self._t0 = os.times().elapsed
    self._busy0, self._own0 = self._jiffies()
    self.samples.append(os.getloadavg()[0])
    self.foreign.append(0.0)

  @staticmethod
  def _jiffies() -> tuple[int, int]:
    try:
      return _cpu_jiffies()
    except (OSError, ValueError, IndexError):  # no /proc (not Linux): load average only
      return 0, 0

  def sample(self) -> float:
    load = os.getloadavg()[0]
    self.samples.append(load)
    busy, own = self._jiffies()
    wall = os.times().elapsed - self._t0
    hz = os.sysconf("SC_CLK_TCK")
    foreign = max(0.0, ((busy - self._busy0) - (own - self._own0)) / hz)
    self.foreign.append(foreign / wall if wall > 1.0 else 0.0)
    return load

  @property
  def max(self) -> float:
    return max(self.samples)

  @property
  def start_load(self) -> float:
    return self.samples[0]

  @property
  def foreign_cores(self) -> float:
    return self.foreign[-1]

  def record(self) -> dict:
    return {"load_avg_samples": [round(x, 2) for x in self.samples], "load_avg_max": round(self.max, 2),
            "load_avg_start": round(self.start_load, 2),
            "other_processes_cpu_cores": round(self.foreign_cores, 3)}


def refuse_if_loaded(monitor: LoadMonitor, out: str, max_load: float = IDLE_LOAD,
                     max_foreign: float = MAX_FOREIGN_CORES) -> None:
  """Exits with code 2, writing nothing, when the machine was not idle: a 1-minute load average
  above max_load when the benchmark started, or other processes using more than max_foreign CPU
  cores on average while it ran."""
  monitor.sample()
  if monitor.start_load > max_load:
    print(f"refusing to write {out}: the 1-minute load average was {monitor.start_load:.2f} when the "
          f"benchmark started (allowed <= {max_load}); rerun on an idle machine", file=sys.stderr)
    raise SystemExit(2)
  if monitor.foreign_cores > max_foreign:
    print(f"refusing to write {out}: other processes used {monitor.foreign_cores:.2f} CPU cores on "
          f"average during the run (allowed <= {max_foreign}); rerun on an idle machine",
          file=sys.stderr)
    raise SystemExit(2)
