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
# # ResNet-BK results explorer: BK against the Transformer baseline
#
# Opens finished workdirs written by `python -m bk.main`, e.g.
#
#     python -m bk.main --config configs/bk.py:quick --workdir runs/bk
#     python -m bk.main --config configs/bk.py:quick_transformer --workdir runs/bk_transformer
#
# and compares them: held-out perplexity beside the unigram floor, parameter counts (total and
# active), learning curves, and the best checkpoint restored and re-evaluated on the validation
# split.

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
if importlib.util.find_spec("bk") is None:
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
RUNS = [p for p in os.environ.get("K7_NOTEBOOK_RUNS", "").split(os.pathsep) if p] or ["runs/bk", "runs/bk_transformer"]

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
from bk import data as bk_data  # noqa: E402
from bk import model as bk_model  # noqa: E402
from bk import train as bk_train  # noqa: E402
from configs import bk as bk_configs  # noqa: E402

runs = {}
for wd in RUNS:
  final = read_json(wd, "final.json")
  if final is None:
    raise FileNotFoundError(f"{wd}: no results/final.json (not a finished bk run)")
  runs[wd] = {"config": load_config(wd, bk_configs.get_config), "final": final,
              "hist": load_history(wd)}
  runs[wd]["label"] = f"{final['arch']} ({os.path.basename(os.path.normpath(wd))})"

print(f"{'run':34s} {'causal':>6s} {'params':>8s} {'active':>8s} {'steps':>6s} {'val ppl':>9s} "
      f"{'test ppl':>9s} {'unigram':>8s}")
for wd, r in runs.items():
  f = r["final"]
  print(f"{r['label']:34s} {str(f['causal']):>6s} {f['params']['total']:8d} "
        f"{f['params']['active_non_embedding']:8d} {f['steps']:6d} {f['val_ppl']:9.2f} "
        f"{f['test_ppl']:9.2f} {f['unigram_val_ppl']:8.2f}")

# %% [markdown]
# ## Learning curves

# %%
fig, axes = plt.subplots(1, 3, figsize=(14, 3.4))
for r in runs.values():
  for ax, key in zip(axes, ("train/loss", "val/ppl", "perf/tokens_per_sec")):
    if key in r["hist"]:
      ax.plot(*r["hist"][key], marker=".", label=r["label"])
      ax.set_title(key)
      ax.set_xlabel("step")
for ax in axes:
  ax.grid(alpha=0.3)
axes[0].legend(fontsize=8)
show(fig)

# %% [markdown]
# ## Best checkpoint, restored and re-evaluated
# The checkpoint with the lowest recorded validation perplexity is restored and evaluated on
# the whole validation split with the library's `bk.train.evaluate`; when it is the final
# checkpoint this reproduces `final.json`.

# %%
datasets = {}
for wd, r in runs.items():
  config = r["config"]
  key = (config.data.corpus, config.data.path, config.data.tokenizer, config.data.vocab_size)
  if key not in datasets:
    datasets[key] = bk_data.load(config.data)
  data = datasets[key]
  model = bk_model.LanguageModel(bk_train.model_config(config, data.vocab_size))
  eval_step = bk_train.make_eval_step(model)
  best, latest = best_step(wd, "val/ppl"), max(checkpoint_manager(wd).all_steps())
  for step in sorted({best, latest}):
    ev = bk_train.evaluate(eval_step, restore(wd, step)["params"], data.valid,
                           config.data.eval_batch_size, config.data.seq_len)
    print(f"{r['label']}: checkpoint step {step}{' (best)' if step == best else ''}: validation "
          f"perplexity {ev['ppl']:.3f} (final.json at step {r['final']['steps']}: "
          f"{r['final']['val_ppl']:.3f})")
    if step == r["final"]["steps"]:  # the final checkpoint reproduces final.json
      assert abs(ev["ppl"] - r["final"]["val_ppl"]) <= 1e-4 * r["final"]["val_ppl"], ev
