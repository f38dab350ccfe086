"""Host-side runtime tuning applied by `common.cli.run` (every `<pkg>.main`) and the benchmarks.

Two settings, both measured on the jepa train step (jepa/README.md, "Benchmark"):

* **glibc malloc keeps freed memory.** XLA:CPU allocates one temp buffer per executable run (441 MB
  for the jepa `quick` step). glibc serves a request that large on XLA's worker threads from a
  fresh `mmap` and unmaps it on free, so every step first-touches every page again: 107k minor
  page faults and ~0.2 CPU-s of kernel time per step. One malloc arena, no mmap and no trimming
  make the buffer come back from the heap, already mapped: 0 page faults per step. glibc reads
  these settings (MALLOC_ARENA_MAX, MALLOC_MMAP_MAX_, MALLOC_TRIM_THRESHOLD_) only at process
  start, so `tune_host` re-executes the same command line once with them set (same PID, so
  signals and batch schedulers see one process).
* **XLA:CPU prefers 512-bit vectors** on AVX-512 machines (`--xla_cpu_prefer_vector_width=512`;
  LLVM's default preference is 256 bits). XLA reads XLA_FLAGS when its first backend starts, so
  this is set in-process.

Neither changes a numerical result. Set COMMON_HOST_TUNING=0 to skip both; values already in the
environment (a MALLOC_* variable, the flag in XLA_FLAGS) are kept as they are.
"""
from __future__ import annotations

import os
import platform
import sys

OPT_OUT = "COMMON_HOST_TUNING"
_MARK = "COMMON_HOST_TUNED"
MALLOC_ENV = {"MALLOC_ARENA_MAX": "1", "MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": str(1 << 40)}
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


def host_env(env: dict[str, str] | None = None) -> dict[str, str]:
  """`env` (default os.environ) plus the tuning: for subprocesses (the benchmarks' workers)."""
  env = dict(os.environ if env is None else env)
  if env.get(OPT_OUT) == "0":
    return env
  if _glibc():
    for key, value in MALLOC_ENV.items():
      env.setdefault(key, value)
  flags = env.get("XLA_FLAGS", "")
  if VECTOR_FLAG not in flags and "avx512f" in _cpu_flags():
    env["XLA_FLAGS"] = f"{flags} {VECTOR_FLAG}=512".strip()
  return env


def tune_host() -> None:
  """Applies the tuning to this process: re-executes it once with the malloc settings when glibc
  has not started with them, then sets XLA_FLAGS. Call before the first JAX computation."""
  if os.environ.get(OPT_OUT) == "0":
    return
  env = host_env()
  needs_exec = _glibc() and any(k not in os.environ for k in MALLOC_ENV) and _MARK not in os.environ
  if needs_exec and getattr(sys, "orig_argv", None):
    env[_MARK] = "1"
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, sys.orig_argv, env)  # does not return
  os.environ["XLA_FLAGS"] = env.get("XLA_FLAGS", "")
  if not os.environ["XLA_FLAGS"]:
    del os.environ["XLA_FLAGS"]
