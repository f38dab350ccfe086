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
# # H-JEPA results explorer: probe accuracy against pre-training steps
#
# Opens finished workdirs written by `python -m jepa.main`, e.g. runs of different lengths
#
#     python -m jepa.main --config configs/jepa.py:quick --config.train.num_steps=400 --workdir runs/jepa_400
#     python -m jepa.main --config configs/jepa.py:quick --workdir runs/jepa_800
#
# and plots the k-NN accuracy tracked during pre-training and each run's final linear-probe and
# k-NN accuracy against its number of steps (with the random-init and pixel references), then
# restores the best checkpoint's target encoder and recomputes its k-NN accuracy.

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
if importlib.util.find_spec("jepa") is None:
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
RUNS = [p for p in os.environ.get("K7_NOTEBOOK_RUNS", "").split(os.pathsep) if p] or ["runs/jepa_400", "runs/jepa_800"]

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
from configs import jepa as jepa_configs  # noqa: E402

runs = {}
for wd in RUNS:
  res = read_json(wd, "final_results.json")
  if res is None:
    raise FileNotFoundError(f"{wd}: no results/final_results.json (not a finished jepa run)")
  runs[wd] = {"config": load_config(wd, jepa_configs.get_config), "res": res,
              "hist": load_history(wd), "label": os.path.basename(os.path.normpath(wd))}
  print(f"{runs[wd]['label']:20s} steps {res['steps']:6d}  linear probe "
        f"{res['linear_probe_accuracy']:.4f}  k-NN {res['knn_accuracy']:.4f}  (random init "
        f"{res['random_init_linear_probe_accuracy']:.4f}, pixels {res['pixel_linear_probe_accuracy']:.4f})")

# %%
fig, axes = plt.subplots(1, 2, figsize=(12, 3.6))
for r in runs.values():
  if "eval/knn_accuracy" in r["hist"]:
    axes[0].plot(*r["hist"]["eval/knn_accuracy"], marker=".", label=r["label"])
axes[0].set_title("k-NN accuracy during pre-training (target encoder)")
axes[0].set_xlabel("step")
order = sorted(runs.values(), key=lambda r: r["res"]["steps"])
xs = [r["res"]["steps"] for r in order]
for key, style in (("linear_probe_accuracy", "o-"), ("knn_accuracy", "s-"),
                   ("random_init_linear_probe_accuracy", "x--"), ("pixel_linear_probe_accuracy", "^:")):
  axes[1].plot(xs, [r["res"][key] for r in order], style, label=key)
axes[1].set_title("final probes against pre-training steps")
axes[1].set_xlabel("pre-training steps")
for ax in axes:
  ax.grid(alpha=0.3)
  ax.legend(fontsize=7)
show(fig)

# %% [markdown]
# ## Best checkpoint, restored: k-NN accuracy recomputed (package-internal calls)
# The same train/test subsets as the run's final evaluation; when the best checkpoint is the
# final one this reproduces `knn_accuracy`.

# %%
from jepa import data as jepa_data  # noqa: E402
from jepa import evaluation as jepa_evaluation  # noqa: E402
from jepa import loss as jepa_loss  # noqa: E402
from jepa import model as jepa_model  # noqa: E402
from jepa import step as jepa_step  # noqa: E402
from jepa import train as jepa_train  # noqa: E402

for wd, r in runs.items():
  c = r["config"]
  ds = jepa_data.load_dataset(c.data)
  vit = jepa_model.vit_config(c.model, c.data.image_size, ds.train_images.shape[-1])
  hier = jepa_loss.hierarchy_from_config(c.hierarchy, vit.depth, vit.grid)
  feature_fn = jepa_step.make_feature_fn(vit, hier, ds.mean, ds.std)
  e = c.eval
  tr = jepa_evaluation.subset_indices(len(ds.train_images), e.train_samples, jepa_train.PROBE_SUBSET_SEED)
  te = jepa_evaluation.subset_indices(len(ds.test_images), e.test_samples, jepa_train.PROBE_SUBSET_SEED)
  best = best_step(wd, c.train.best_metric, c.train.best_mode)
  latest = max(checkpoint_manager(wd).all_steps())
  for step in sorted({best, latest}):
    target_params = restore(wd, step)["target"]["params"]
    ftr = jepa_train.extract(feature_fn, target_params, ds.train_images[tr], e.batch_size)["pooled"]
    fte = jepa_train.extract(feature_fn, target_params, ds.test_images[te], e.batch_size)["pooled"]
    knn = jepa_evaluation.knn_accuracy(ftr, ds.train_labels[tr], fte, ds.test_labels[te], k=e.knn_k,
                                       temperature=e.knn_temperature, num_classes=ds.num_classes)
    print(f"{r['label']}: checkpoint step {step}{' (best by ' + c.train.best_metric + ')' if step == best else ''}"
          f": k-NN accuracy {knn:.4f} (final_results.json at step {r['res']['steps']}: "
          f"{r['res']['knn_accuracy']:.4f})")
    if step == r["res"]["steps"]:  # the final checkpoint reproduces final_results.json
      assert abs(knn - r["res"]["knn_accuracy"]) < 1e-6, knn
