# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # NSM results explorer: domains side by side
#
# Opens finished workdirs written by `python -m nsm.main`, e.g.
#
#     python -m nsm.main --config configs/nsm.py:quick --config.domain=causal --workdir runs/nsm_causal
#     python -m nsm.main --config configs/nsm.py:quick --config.domain=planning --workdir runs/nsm_planning
#     python -m nsm.main --config configs/nsm.py:quick --config.domain=kg --workdir runs/nsm_kg
#
# and shows test accuracy against the baselines, validation curves, the confusion matrices side
# by side, and the best-validation parameters restored from the last checkpoint and re-evaluated
# on the test split.

# %% [markdown]
# ## Install
# On Colab (or any fresh environment) this installs the repository with pip; where it is already
# importable (`pip install -e .` in a checkout) it does nothing. Set `REPO` (or the `K7_REPO`
# environment variable) to your clone's git URL (`git+https://…/k7-research.git`) or local path.

# %%
import importlib.util
import os
import subprocess
import sys

REPO = os.environ.get("K7_REPO", "")
if importlib.util.find_spec("nsm") is None:
  _checkout = os.path.abspath("..")
  _source = REPO or (_checkout if os.path.exists(os.path.join(_checkout, "setup.py")) else "")
  if not _source:
    raise RuntimeError("k7-research is not installed: set REPO to its git URL or local path")
  subprocess.run([sys.executable, "-m", "pip", "install", "-q", _source], check=True)

# %% [markdown]
# ## Parameters
# `RUNS`: finished workdirs (local paths or a mounted drive; on Colab mount it first with
# `from google.colab import drive; drive.mount("/content/drive")`).

# %% tags=["parameters"]
SMOKE = os.environ.get("K7_NOTEBOOK_SMOKE") == "1"  # CI: tiny sizes
RUNS = [p for p in os.environ.get("K7_NOTEBOOK_RUNS", "").split(os.pathsep) if p] or ["runs/nsm_causal", "runs/nsm_planning", "runs/nsm_kg"]

# %% [markdown]
# ## Reading a workdir
# A workdir holds `config.json`, `metrics.jsonl`, `results/` and `checkpoints/` (Orbax, written
# by `common.checkpoint`). The checkpoint cell is the only one that touches the storage format.

# %%
import io  # noqa: E402
import json  # noqa: E402

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from IPython.display import Image, display  # noqa: E402


def show(fig):
  """Displays a figure as a PNG whatever the matplotlib backend (library modules select Agg)."""
  buf = io.BytesIO()
  fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
  plt.close(fig)
  display(Image(buf.getvalue()))


def load_history(workdir):
  """{name: (steps, values)} from metrics.jsonl."""
  hist = {}
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    for line in f:
      if line.strip():
        rec = json.loads(line)
        for k, v in rec.items():
          if k != "step":
            hist.setdefault(k, ([], []))
            hist[k][0].append(rec["step"])
            hist[k][1].append(float(v))
  return {k: (np.asarray(s), np.asarray(v)) for k, (s, v) in hist.items()}


def load_config(workdir, get_config):
  """The run's config: the package's default config updated with the saved config.json."""
  with open(os.path.join(workdir, "config.json")) as f:
    saved = json.load(f)
  flat = {}

  def walk(d, prefix=""):
    for k, v in d.items():
      if isinstance(v, dict):
        walk(v, prefix + k + ".")
      else:
        flat[prefix + k] = tuple(v) if isinstance(v, list) else v

  walk(saved)
  config = get_config()
  config.update_from_flattened_dict(flat)
  return config


def read_json(workdir, *names):
  """The first of results/<name> that exists, as a dict (None if none does)."""
  for name in names:
    for path in (os.path.join(workdir, "results", name), os.path.join(workdir, name)):
      if os.path.exists(path):
        with open(path) as f:
          return json.load(f)
  return None


# %%
# Checkpoints: Orbax's manager in read-only mode (safe on the workdir of a run still going).
import orbax.checkpoint as ocp  # noqa: E402


def checkpoint_manager(workdir):
  return ocp.CheckpointManager(os.path.join(os.path.abspath(workdir), "checkpoints"),
                               options=ocp.CheckpointManagerOptions(read_only=True))


def best_step(workdir, metric, mode="min"):
  """The checkpoint on disk with the best recorded `metric` (the latest if none was evaluated)."""
  steps = checkpoint_manager(workdir).all_steps()
  hist = load_history(workdir).get(metric)
  scored = []
  if hist is not None:
    at = dict(zip(hist[0].tolist(), hist[1].tolist()))
    scored = [(at[s] if mode == "min" else -at[s], s) for s in steps if s in at]
  return min(scored)[1] if scored else max(steps)


def restore(workdir, step):
  """The saved state at `step` as nested dicts of arrays (no model code needed)."""
  restored = checkpoint_manager(workdir).restore(
      step, args=ocp.args.Composite(state=ocp.args.StandardRestore()))
  return restored["state"]

# %% [markdown]
# ## Runs

# %%
from configs import nsm as nsm_configs  # noqa: E402

runs = {}
for wd in RUNS:
  res = read_json(wd, "final_results.json")
  if res is None:
    raise FileNotFoundError(f"{wd}: no final_results.json (not a finished nsm run)")
  runs[wd] = {"config": load_config(wd, nsm_configs.get_config), "res": res,
              "hist": load_history(wd), "label": f"{res['domain']} ({res['mode']})"}

print(f"{'domain':18s} {'test acc':>9s} {'balanced':>9s} {'params':>8s}  baselines")
for r in runs.values():
  res = r["res"]
  base = ", ".join(f"{k} {v:.3f}" for k, v in res.get("baselines", {}).items())
  print(f"{r['label']:18s} {res['test_accuracy']:9.4f} {res['balanced_accuracy']:9.4f} "
        f"{res['num_params']:8d}  {base}")

# %% [markdown]
# ## Validation curves and confusion matrices

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 3.4))
for r in runs.values():
  for ax, key in zip(axes, ("val/accuracy", "val/loss")):
    if key in r["hist"]:
      ax.plot(*r["hist"][key], marker=".", label=r["label"])
      ax.set_title(key)
      ax.set_xlabel("step")
      ax.grid(alpha=0.3)
axes[0].legend(fontsize=8)
show(fig)

fig, axes = plt.subplots(1, len(runs), figsize=(3.6 * len(runs), 3.2), squeeze=False)
for ax, r in zip(axes[0], runs.values()):
  cm = np.asarray(r["res"]["confusion_matrix"])
  ax.imshow(cm, cmap="Blues")
  for (i, j), v in np.ndenumerate(cm):
    ax.text(j, i, int(v), ha="center", va="center", color="black")
  ax.set_title(f"{r['label']}: acc {r['res']['test_accuracy']:.3f}", fontsize=9)
  ax.set_xlabel("predicted")
  ax.set_ylabel("true")
show(fig)

# %% [markdown]
# ## Restored checkpoint, re-evaluated (package-internal calls; adapt if nsm's API changes)
# NSM keeps the best-validation parameters inside its train state; the last checkpoint's
# `best_params` are what `final_results.json` was computed from.

# %%
from nsm import data as nsm_data  # noqa: E402
from nsm import model as nsm_model  # noqa: E402
from nsm import train as nsm_train  # noqa: E402

for wd, r in runs.items():
  c = r["config"]
  dataset = nsm_data.build_dataset(c.domain, c.data.mode, c.data.num_graphs, c.seed,
                                   feature_dim=c.data.feature_dim,
                                   inverse_edges=c.data.inverse_edges)
  splits = nsm_data.split_indices(len(dataset.graphs), c.data.split, c.seed)
  batches = nsm_data.Batches(dataset, splits, c.train.batch_size, c.seed)
  model = nsm_model.NSM(nsm_train.model_config(c, dataset.num_relations))
  step = max(checkpoint_manager(wd).all_steps())
  state = restore(wd, step)
  _, y, p = nsm_train.make_evaluator(model, c.loss.cycle_weight)(state["best_params"],
                                                                 batches.eval_batches("test"))
  acc = float(np.mean(y == p))
  print(f"{r['label']}: checkpoint {step}, best validation loss {float(state['best_val_loss']):.4f}, "
        f"test accuracy {acc:.4f} (final_results.json: {r['res']['test_accuracy']:.4f})")
  assert abs(acc - r["res"]["test_accuracy"]) < 1e-6
