"""Suite-wide: one persistent JAX compilation cache for the whole pytest session.

The xdist workers and every subprocess a test starts (toy jobs, the distributed checks, the
notebook kernels) inherit JAX_COMPILATION_CACHE_DIR, a fresh directory made once per session by
the controller, so a program compiled once (a package's train step, recompiled by each resumed
run in a new process or by a new jit) is loaded instead of compiled again. A cache hit loads the
executable XLA built for the same program, options and devices, so results are bit-identical;
the cache starts empty every session, so nothing from another checkout or JAX version is
reused. Set K7_TEST_JAX_CACHE=0 to run without it (or set JAX_COMPILATION_CACHE_DIR yourself).
"""
import os
import shutil
import tempfile

_VARS = {"JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0.5",  # skips thousands of tiny programs
         "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "-1"}
_OWNED = []


def _enable_cache():
  if os.environ.get("K7_TEST_JAX_CACHE") == "0" or "PYTEST_XDIST_WORKER" in os.environ:
    return  # disabled, or an xdist worker: the controller set the variables it inherited
  if not os.environ.get("JAX_COMPILATION_CACHE_DIR"):
    path = tempfile.mkdtemp(prefix="k7_jax_cache_")
    _OWNED.append(path)
    os.environ["JAX_COMPILATION_CACHE_DIR"] = path
  for k, v in _VARS.items():
    os.environ.setdefault(k, v)


# At import (before the first compile in this process; jax reads the variables when imported,
# and decides once per process whether to use the cache).
_enable_cache()
if "jax" in __import__("sys").modules and os.environ.get("JAX_COMPILATION_CACHE_DIR"):
  import jax
  jax.config.update("jax_compilation_cache_dir", os.environ.get("JAX_COMPILATION_CACHE_DIR"))
  jax.config.update("jax_persistent_cache_min_compile_time_secs",
                    float(os.environ.get("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")))
  jax.config.update("jax_persistent_cache_min_entry_size_bytes",
                    int(os.environ.get("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "-1")))


def pytest_unconfigure(config):
  for path in _OWNED:
    shutil.rmtree(path, ignore_errors=True)
