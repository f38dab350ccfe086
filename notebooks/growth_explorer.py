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
# # Growth results explorer: validation loss against training FLOPs
#
# Opens finished workdirs written by `python -m growth.main`, e.g.
#
#     python -m growth.main --config configs/growth.py:quick --config.growth.strategy=geometric --workdir runs/growth_geometric
#     python -m growth.main --config configs/growth.py:quick --config.growth.strategy=copy --workdir runs/growth_copy
#
# and plots each run's validation loss against the training FLOPs spent (the budget is in
# FLOPs, so a growing model is compared at equal compute), with its growth events, then restores
# the last checkpoint at its grown depth and re-evaluates it.

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
if importlib.util.find_spec("growth") is None:
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
RUNS = [p for p in os.environ.get("K7_NOTEBOOK_RUNS", "").split(os.pathsep) if p] or ["runs/growth_geometric", "runs/growth_copy"]

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
# ## Runs and FLOPs
# Training FLOPs per step at depth d: `growth.model.train_flops_per_token` x tokens per step,
# integrated over the depth history (the growth events in `final.json`).

# %%
from configs import growth as growth_configs  # noqa: E402
from growth import data as growth_data  # noqa: E402
from growth import model as growth_model  # noqa: E402
from growth import steps as growth_steps  # noqa: E402


def flops_at(step, config, events, vocab_size):
  cfg = growth_model.GPTConfig.from_config(config.model, vocab_size)
  per_step = lambda d: (growth_model.train_flops_per_token(cfg, d)  # noqa: E731
                        * config.data.batch_size * config.model.seq_len)
  total, prev, depth = 0.0, 0, config.growth.initial_depth
  for ev in events:
    if ev["step"] >= step:
      break
    total += (ev["step"] - prev) * per_step(depth)
    prev, depth = ev["step"], ev["depth_after"]
  return total + (step - prev) * per_step(depth)


runs, datasets = {}, {}
for wd in RUNS:
  final = read_json(wd, "final.json")
  if final is None:
    raise FileNotFoundError(f"{wd}: no results/final.json (not a finished growth run)")
  config = load_config(wd, growth_configs.get_config)
  key = (config.data.corpus, config.data.path, config.data.tokenizer, config.data.vocab_size,
         config.data.max_train_tokens)
  if key not in datasets:
    datasets[key] = growth_data.load(config.data)
  runs[wd] = {"config": config, "final": final, "hist": load_history(wd), "data": datasets[key],
              "label": f"{config.growth.strategy}/{config.growth.trigger} "
                       f"({os.path.basename(os.path.normpath(wd))})"}
  # The FLOP integral reproduces the run's own account of what it spent.
  spent = flops_at(final["step"], config, final["events"], datasets[key].vocab_size)
  assert abs(spent - final["flops_used"]) <= 1e-6 * final["flops_used"], (spent, final)
  print(f"{runs[wd]['label']:40s} val loss {final['val_loss']:.4f}, depth {final['depth']}, "
        f"{len(final['events'])} growth events, {spent:.3g} FLOPs of {final['budget_flops']:.3g}")

# %%
fig, ax = plt.subplots(figsize=(7, 4))
for r in runs.values():
  steps_, vals = r["hist"]["val/loss"]
  x = [flops_at(s, r["config"], r["final"]["events"], r["data"].vocab_size) for s in steps_]
  line, = ax.plot(x, vals, marker=".", label=r["label"])
  for ev in r["final"]["events"]:
    ax.axvline(flops_at(ev["step"], r["config"], r["final"]["events"], r["data"].vocab_size),
               color=line.get_color(), ls=":", alpha=0.6)
ax.set_xlabel("training FLOPs")
ax.set_ylabel("validation loss (nats/token)")
ax.set_title("validation loss vs FLOPs (dotted: growth events)")
ax.grid(alpha=0.3)
ax.legend(fontsize=8)
show(fig)

# %% [markdown]
# ## Last checkpoint, restored at its grown depth and re-evaluated

# %%
for wd, r in runs.items():
  config, data = r["config"], r["data"]
  step = max(checkpoint_manager(wd).all_steps())
  params = restore(wd, step)["params"]
  cfg = growth_model.GPTConfig.from_config(config.model, data.vocab_size)
  batches = growth_data.eval_set(data.valid, config.data.batch_size, config.model.seq_len,
                                 config.data.eval_batches)
  loss = growth_steps.evaluate(params, cfg, batches)
  print(f"{r['label']}: checkpoint {step} at depth {growth_model.depth_of(params)}: "
        f"validation loss {loss:.4f} (final.json: {r['final']['val_loss']:.4f})")
  if step == r["final"]["step"]:
    assert abs(loss - r["final"]["val_loss"]) < 1e-4, loss
