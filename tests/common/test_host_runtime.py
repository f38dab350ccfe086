"""common.runtime: the host tuning that every <pkg>.main applies (malloc re-exec, XLA vector width)."""
import json
import os
import platform
import subprocess
import sys

import pytest

from common import runtime

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# mallocs, fills and frees 96 MB five times on a worker thread (XLA:CPU's temp-buffer pattern; plain
# malloc, no madvise) and reports the minor page faults of the last four rounds.
PROBE = r"""
import ctypes, json, os, resource, sys, threading
from common import runtime
runtime.tune_host(enable=len(sys.argv) < 2)
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
faults = []
def work():
  for i in range(5):
    r0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    buf = libc.malloc(96 * 1024 * 1024)
    ctypes.memset(buf, 1, 96 * 1024 * 1024)
    libc.free(buf)
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - r0)
t = threading.Thread(target=work); t.start(); t.join()
print(json.dumps({"pid": os.getpid(), "arena": os.environ.get("MALLOC_ARENA_MAX"),
                  "tunables": os.environ.get("GLIBC_TUNABLES", ""),
                  "xla_flags": os.environ.get("XLA_FLAGS", ""), "faults": faults[1:]}))
"""


def _probe(*argv, **env_overrides):
  env = {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "COMMON_HOST_"))}
  env.pop("XLA_FLAGS", None)
  env.pop("GLIBC_TUNABLES", None)
  env.update(env_overrides)
  env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
  proc = subprocess.run([sys.executable, "-c", PROBE, *argv], capture_output=True, text=True, timeout=120, env=env,
                        cwd=ROOT)
  assert proc.returncode == 0, proc.stderr
  lines = proc.stdout.strip().splitlines()
  assert len(lines) == 1, proc.stdout  # re-exec runs the program once, not twice
  return json.loads(lines[0])


def _thp_mode() -> str:
  try:
    with open("/sys/kernel/mm/transparent_hugepage/enabled") as f:
      return f.read().split("[")[1].split("]")[0]
  except (OSError, IndexError):
    return "unavailable"


needs_glibc = pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                                 reason="the malloc tuning applies to glibc on Linux only")


@needs_glibc
def test_tune_host_reexecs_once_and_large_thread_buffers_stop_faulting():
  tuned = _probe()
  assert tuned["arena"] == "1"
  assert ("glibc.malloc.hugetlb=1" in tuned["tunables"]) == runtime._glibc_has_hugetlb_tunable()
  untuned = _probe(COMMON_HOST_TUNING="0")
  assert untuned["arena"] is None and untuned["tunables"] == ""
  assert "xla_cpu_prefer_vector_width" not in untuned["xla_flags"]
  not_opted_in = _probe("off")  # tune_host(enable=False): a package that did not opt in
  assert not_opted_in["arena"] is None
  assert _probe("off", COMMON_HOST_TUNING="1")["arena"] == "1"  # the variable overrides the package
  pages = 96 * 1024 * 1024 // 4096
  if _thp_mode() in ("madvise", "never"):  # with THP=always, plain mappings get huge pages too
    # glibc alone maps a fresh 96 MB for each round on a worker thread: every 4 KiB page faults.
    assert min(untuned["faults"]) > 0.5 * pages, untuned
  # Tuned: the buffer comes back from the heap, already mapped.
  assert max(tuned["faults"]) < 0.05 * pages, tuned


def test_bad_opt_out_value(monkeypatch):
  monkeypatch.setenv("COMMON_HOST_TUNING", "yes")
  with pytest.raises(ValueError, match="COMMON_HOST_TUNING='yes' is invalid: allowed 0"):
    runtime.tune_host()


@needs_glibc
def test_host_env_keeps_user_settings_and_opt_out():
  env = runtime.host_env({"MALLOC_ARENA_MAX": "4", "GLIBC_TUNABLES": "glibc.malloc.hugetlb=0",
                          "XLA_FLAGS": "--xla_cpu_prefer_vector_width=256"})
  assert env["MALLOC_ARENA_MAX"] == "4" and env["MALLOC_MMAP_MAX_"] == "0"
  assert env["GLIBC_TUNABLES"] == "glibc.malloc.hugetlb=0"
  assert env["XLA_FLAGS"] == "--xla_cpu_prefer_vector_width=256"
  if runtime._glibc_has_hugetlb_tunable():
    assert runtime.host_env({"GLIBC_TUNABLES": "glibc.malloc.arena_test=2"})["GLIBC_TUNABLES"] == (
        "glibc.malloc.arena_test=2:glibc.malloc.hugetlb=1")
  assert runtime.host_env({"COMMON_HOST_TUNING": "0"}) == {"COMMON_HOST_TUNING": "0"}
  try:
    with open("/proc/cpuinfo") as f:
      avx512 = "avx512f" in f.read()
  except OSError:
    avx512 = False
  assert ("--xla_cpu_prefer_vector_width=512" in runtime.host_env({}).get("XLA_FLAGS", "")) == avx512
