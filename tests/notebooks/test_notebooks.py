"""Executes every notebook in notebooks/ top to bottom with a real kernel (nbclient), tiny sizes.

The jupytext percent scripts notebooks/*.py are the source; each paired .ipynb must match it.
Per package, the notebooks run in order in fresh kernels (the quick start first: the explorers
and interpretability notebooks open its run), with K7_NOTEBOOK_SMOKE=1 (tiny configs) and a JAX
compilation cache shared by all of them; growth also runs `python -m growth.main` on the tiny config.
Deselect locally with `-m "not notebooks"`.
"""
import glob
import os
import re
import subprocess
import sys

import pytest

nbformat = pytest.importorskip("nbformat", reason="the [notebooks] extra is not installed")
jupytext = pytest.importorskip("jupytext", reason="the [notebooks] extra is not installed")
nbclient = pytest.importorskip("nbclient", reason="the [notebooks] extra is not installed")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NB_DIR = os.path.join(ROOT, "notebooks")
SOURCES = sorted(glob.glob(os.path.join(NB_DIR, "*.py")))

# Per package, in order: ("main", workdir, config, overrides) runs `python -m <pkg>.main`;
# ("nb", name, workdir, runs) executes notebooks/<name>.py with K7_NOTEBOOK_WORKDIR=workdir and
# K7_NOTEBOOK_RUNS=runs. The explorers and interpretability notebooks open the quick start's run
# (written by the package's own `train_and_evaluate`, which `<pkg>.main` calls); one package also
# runs `python -m <pkg>.main` (CLI, config file and flags end to end) and its explorer compares
# the two runs. A main run per package cost 36-50 CPU-s (2-core machine, loaded), most of it
# outside the train step (imports, init, evaluations, dashboards), which the quick start already
# runs; `<pkg>.main` is three lines over `common.cli.run`, which tests/common runs through
# tests/common/toy_train.py.
PLAN = {
    "bk": [
        ("nb", "bk_quickstart", "qs", []),
        ("nb", "bk_explorer", None, ["qs"]),
        ("nb", "bk_interpret", "qs", []),
    ],
    "g2": [
        ("nb", "g2_quickstart", "qs", []),
        ("nb", "g2_interpret", "qs", []),
    ],
    "jepa": [  # the quick start writes a generated stand-in where Fashion-MNIST is not installed
        ("nb", "jepa_quickstart", "qs", []),
        ("nb", "jepa_explorer", None, ["qs"]),
        ("nb", "jepa_interpret", "qs", []),
    ],
    "nsm": [
        ("nb", "nsm_quickstart", "qs", []),
        ("nb", "nsm_explorer", None, ["qs"]),
        ("nb", "nsm_interpret", "qs", []),
    ],
    "growth": [
        # After the quick start (geometric growth): a main run with copy growth, which uses the
        # same train-step programs (loaded from the compilation cache); the explorer compares them.
        ("nb", "growth_quickstart", "qs", []),
        ("main", "growth_copy", "growth.py:tiny", ["--config.growth.trigger=schedule",
                                                   "--config.growth.strategy=copy"]),
        ("nb", "growth_explorer", None, ["growth_copy", "qs"]),
    ],
}


def _env(tmp, **extra):
  env = dict(os.environ)
  env["PYTHONPATH"] = os.pathsep.join([ROOT] + [p for p in [env.get("PYTHONPATH")] if p])
  env["K7_NOTEBOOK_SMOKE"] = "1"
  if not env.get("JAX_COMPILATION_CACHE_DIR"):  # else the session's (tests/conftest.py)
    env["JAX_COMPILATION_CACHE_DIR"] = str(tmp / "jax_cache")
    env["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "-1"
  # Every program, also the short ones (the session skips those under 0.5 s): each process of a
  # chain repeats the model inits and evaluations op by op, hundreds of 0.05-0.4 s compiles that
  # the next process then loads (jepa: -18 CPU-s of 165).
  env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
  env["IPYTHONDIR"] = str(tmp / "ipython")  # nothing written to $HOME
  env.update(extra)
  return env


def _outputs_text(nb) -> str:
  parts = []
  for cell in nb.cells:
    for out in cell.get("outputs", []):
      parts.append(out.get("text", ""))
      parts.append(str(out.get("data", {}).get("text/plain", "")))
  return "\n".join(parts)


def run_notebook(name: str, tmp, **env_extra):
  """Executes notebooks/<name>.py in a fresh python3 kernel; returns the executed notebook."""
  nb = jupytext.read(os.path.join(NB_DIR, name + ".py"))
  client = nbclient.NotebookClient(nb, timeout=900, kernel_name="python3",
                                   resources={"metadata": {"path": str(tmp)}})
  try:
    client.execute(env=_env(tmp, **env_extra))
  finally:  # kept for inspection: <tmp>/<name>.executed.ipynb
    nbformat.write(nb, str(tmp / f"{name}.executed.ipynb"))
  return nb


def run_main(pkg: str, workdir, config_arg: str, overrides, tmp):
  cmd = [sys.executable, "-m", f"{pkg}.main", f"--config={os.path.join(ROOT, 'configs', config_arg)}",
         f"--workdir={workdir}", *overrides]
  proc = subprocess.run(cmd, cwd=ROOT, env=_env(tmp), capture_output=True, text=True, timeout=900)
  assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stderr[-4000:]}"


def test_every_notebook_has_a_plan_and_a_paired_ipynb():
  names = [os.path.basename(p)[:-3] for p in SOURCES]
  planned = [step[1] for plan in PLAN.values() for step in plan if step[0] == "nb"]
  assert sorted(planned) == sorted(names)
  for path in SOURCES:
    ipynb = path[:-3] + ".ipynb"
    assert os.path.exists(ipynb), f"{ipynb} missing: run `jupytext --sync {path}`"
    src, paired = jupytext.read(path), nbformat.read(ipynb, as_version=4)
    assert [(c.cell_type, c.source) for c in src.cells] == \
        [(c.cell_type, c.source) for c in paired.cells], \
        f"{ipynb} differs from {path}: run `jupytext --sync {path}`"
    for cell in paired.cells:
      assert not cell.get("outputs") and not cell.get("execution_count"), \
          f"{ipynb} holds outputs: regenerate it with `jupytext --sync {path}`"


@pytest.mark.notebooks
@pytest.mark.parametrize("pkg", sorted(PLAN))
def test_notebooks_execute(pkg, tmp_path, monkeypatch):
  """Main runs, then the package's notebooks top to bottom; any cell error fails the test."""
  monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "jupyter_runtime"))  # connection files
  for kind, name, arg, extra in PLAN[pkg]:
    if kind == "main":
      run_main(arg.split(".")[0], tmp_path / name, arg,
               [o.format(tmp=tmp_path) for o in extra], tmp_path)
      continue
    workdir = str(tmp_path / arg) if arg else ""
    nb = run_notebook(name, tmp_path, K7_NOTEBOOK_WORKDIR=workdir,
                      K7_NOTEBOOK_RUNS=os.pathsep.join(str(tmp_path / r) for r in extra))
    text = _outputs_text(nb)
    if name.endswith("_quickstart"):
      assert "status: preempted" in text, f"{name}: the simulated preemption did not stop the run"
      assert re.search(r"resumed from step [1-9]", text), f"{name}: the re-run did not resume"
