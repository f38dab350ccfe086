"""Host-side runtime tuning for large CPU train steps: a package opts in with
`common.cli.run(..., host_tuning=True)` (jepa does); its benchmark applies the same.

Measured on the jepa train step (jepa/README.md, "Benchmark"):

* **glibc malloc reuses and huge-pages XLA's temp buffer.** XLA:CPU allocates one temp buffer per
  executable run (441 MB for the jepa `quick` step, 1.4 GB for ViT-Tiny). glibc serves a request
  that large on XLA's worker threads from a fresh `mmap` and unmaps it on free, so every step
  first-touches every 4 KiB page again: 107k (quick) to 382k (ViT-Tiny) minor page faults and
  0.2-0.5 CPU-s of kernel time per step. One malloc arena with mmap and trimming off
  (MALLOC_ARENA_MAX=1, MALLOC_MMAP_MAX_=0, MALLOC_TRIM_THRESHOLD_) makes the buffer come back from
  the heap, already mapped (0 faults per step). `glibc.malloc.hugetlb=1` (glibc >= 2.35, with THP
  in `madvise` or `always` mode) backs that heap with 2 MiB pages. Huge pages alone, without the
  arena settings, were as fast for one process alone but slowed ViT-Tiny by 1.6x while another
  process churned memory, because every step faulted in fresh huge pages.
* **XLA:CPU prefers 512-bit vectors** on AVX-512 machines (`--xla_cpu_prefer_vector_width=512`;
  LLVM's default preference is 256 bits).

The cost, and why it is opt-in: with one arena, a tiny step (jepa `tiny`, ~7 ms) got 30-50 %
slower, from malloc contention between threads. glibc reads its settings only at process start,
so `tune_host` re-executes the same command line once with them set (same PID, so signals and
batch schedulers see one process); XLA reads XLA_FLAGS when its first backend starts. Nothing
changes a numerical result. COMMON_HOST_TUNING=0 or =1 overrides a package's choice; settings
already in the environment (a MALLOC_* variable, a glibc.malloc.hugetlb tunable, the XLA flag) are
kept as they are.
"""
from __future__ import annotations

import os
import platform
import sys

OPT_OUT = "COMMON_HOST_TUNING"
_MARK = "COMMON_HOST_TUNED"
MALLOC_ENV = {"MALLOC_ARENA_MAX": "1", "MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": str(1 << 40)}
HUGETLB = "glibc.malloc.hugetlb"
VECTOR_FLAG = "--xla_cpu_prefer_vector_width"


def _cpu_flags() -> set[str]:
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if line.startswith("flags"):
          return set(line.split(":", 1)[1].split())
  except OSError:
    pass
  return set()


def _glibc() -> bool:
  return platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


def _glibc_has_hugetlb_tunable() -> bool:
  if not _glibc():
    return False
  try:
    return tuple(int(x) for x in platform.libc_ver()[1].split(".")[:2]) >= (2, 35)
  except ValueError:
    return False


def host_env(env: dict[str, str] | None = None) -> dict[str, str]:
  """`env` (default os.environ) plus the tuning: for subprocesses (the benchmarks' workers)."""
  env = dict(os.environ if env is None else env)
  if env.get(OPT_OUT) == "0":
    return env
  if _glibc():
    for key, value in MALLOC_ENV.items():
      env.setdefault(key, value)
  tunables = env.get("GLIBC_TUNABLES", "")
  if _glibc_has_hugetlb_tunable() and HUGETLB not in tunables:
    env["GLIBC_TUNABLES"] = f"{tunables}:{HUGETLB}=1" if tunables else f"{HUGETLB}=1"
  flags = env.get("XLA_FLAGS", "")
  if VECTOR_FLAG not in flags and "avx512f" in _cpu_flags():
    env["XLA_FLAGS"] = f"{flags} {VECTOR_FLAG}=512".strip()
  return env


def tune_host(enable: bool = True) -> None:
  """Applies the tuning to this process when `enable` (COMMON_HOST_TUNING=0/1 overrides it):
  re-executes once with the glibc settings, then sets XLA_FLAGS. Call before any JAX work."""
  choice = os.environ.get(OPT_OUT)
  if choice not in (None, "0", "1"):
    raise ValueError(f"{OPT_OUT}={choice!r} is invalid: allowed 0 (off), 1 (on) or unset (the package's choice)")
  if choice == "0" or (not enable and choice != "1"):
    return
  env = host_env()
  keys = list(MALLOC_ENV) + ["GLIBC_TUNABLES"]
  needs_exec = any(env.get(k) != os.environ.get(k) for k in keys) and _MARK not in os.environ
  # Never replace a test runner (a test that calls a main in-process) or an interactive session.
  needs_exec &= "pytest" not in sys.modules and bool(getattr(sys, "orig_argv", None))
  needs_exec &= getattr(sys, "ps1", None) is None
  if needs_exec:
    env[_MARK] = "1"
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, sys.orig_argv, env)  # does not return
  if env.get("XLA_FLAGS"):
    os.environ["XLA_FLAGS"] = env["XLA_FLAGS"]
