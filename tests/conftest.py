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


# --- xdist (`pytest -n 2`): the longest work first, so that the two workers finish together -----
# A work unit is one test, except in the modules not listed in _SPLIT_MODULES: their tests share
# module-scoped fixtures (a trained run, float64 settings) and go to one worker together, as with
# `--dist loadfile`. Units start in decreasing order of _SECONDS (per-unit time measured on the 2-core
# machine, rounded; units not listed are short and follow in collection order), and a worker takes
# the next unit when it runs low, so the last minutes hold short tests on both workers instead of
# one notebook chain on one. Only the order changes; an explicit `--dist` is left alone.
_SPLIT_MODULES = {
    "tests/notebooks/test_notebooks.py", "tests/common/test_packages_distributed.py",
    "tests/common/test_resume.py", "tests/nsm/test_nsm_hierarchy.py", "tests/g2/test_examples.py",
    "tests/g2/test_bryant_salamon.py", "tests/jepa/test_jepa_step.py",
    "tests/growth/test_growth_mechanics.py", "tests/bk/test_model.py",
}
_DIST = "tests/common/test_packages_distributed.py::"
_NB = "tests/notebooks/test_notebooks.py::test_notebooks_execute"
_SECONDS = {  # idle 2-core run of session 7 (notebooks: scaled by their measured trim)
    _NB + "[g2]": 119, "tests/g2/test_train.py": 126,
    "tests/g2/test_bryant_salamon.py::test_short_run_recovers_the_exact_profiles": 116,
    "tests/nsm/test_nsm_train.py": 111, "tests/jepa/test_jepa_stream.py": 94,
    _NB + "[nsm]": 90,
    _DIST + "test_package_train_step_on_4_devices_matches_1_and_resumes_across_counts[g2]": 88,
    "tests/nsm/test_nsm_model.py": 88, _NB + "[jepa]": 87, "tests/growth/test_growth_controls.py": 83,
    "tests/jepa/test_jepa_train.py": 78, _NB + "[bk]": 74,
    "tests/g2/test_eguchi_hanson.py": 63, "tests/g2/test_harmonic.py": 63,
    "tests/g2/test_yukawa.py": 63, "tests/g2/test_learning.py": 61,
    _DIST + "test_package_train_step_on_4_devices_matches_1_and_resumes_across_counts[bk]": 58,
    _DIST + "test_package_train_step_on_4_devices_matches_1_and_resumes_across_counts[nsm]": 55,
    _DIST + "test_package_train_step_on_4_devices_matches_1_and_resumes_across_counts[jepa]": 54,
    "tests/growth/test_growth_train.py": 48, "tests/bk/test_train.py": 48, _NB + "[growth]": 41,
    "tests/bk/test_core.py": 39,
    _DIST + "test_two_processes_match_one_and_their_checkpoint_restores_in_one": 38,
    "tests/common/test_resume.py::test_config_change_on_resume_is_logged_and_every_config_kept": 35,
    "tests/g2/test_joyce.py": 32, "tests/jepa/test_jepa_model_loss.py": 31,
    "tests/common/test_runtime_units.py": 30, "tests/g2/test_harmonic_coordinates.py": 30,
    "tests/g2/test_resolution.py": 28,
    "tests/nsm/test_nsm_hierarchy.py::test_zeroing_the_l1_readout_path_changes_nothing_only_in_hier[hier]": 25,
    "tests/g2/test_orbifold.py": 24,
}


def _work_unit(nodeid: str) -> str:
  module = nodeid.split("::", 1)[0]
  return nodeid if module in _SPLIT_MODULES else module


def pytest_collection_modifyitems(config, items):
  if "PYTEST_XDIST_WORKER" not in os.environ:
    return  # one process: collection order
  first = {}
  for i, item in enumerate(items):
    first.setdefault(_work_unit(item.nodeid), i)
  # stable: a unit's tests stay together and in their order
  items.sort(key=lambda it: (-_SECONDS.get(_work_unit(it.nodeid), 0), first[_work_unit(it.nodeid)]))


try:
  from xdist.scheduler import LoadScopeScheduling
except ImportError:  # pytest-xdist not installed: nothing to schedule
  LoadScopeScheduling = None

if LoadScopeScheduling is not None:
  import pytest

  class _LongestFirstScheduling(LoadScopeScheduling):
    """xdist's scope scheduler over the work units above, in the workers' collection order."""

    def _split_scope(self, nodeid):
      return _work_unit(nodeid)

  @pytest.hookimpl(optionalhook=True)
  def pytest_xdist_make_scheduler(config, log):
    if config.getoption("dist") != "load":  # `-n N` alone means "load"; another --dist wins
      return None
    config.option.loadscopereorder = False  # keep the order made in pytest_collection_modifyitems
    return _LongestFirstScheduling(config, log)
