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
# # ResNet-BK interpretability: G_ii, potentials and routing for your sentence
#
# Type a sentence; a trained ResNet-BK model reads it and we plot, per layer and per position,
# the diagonal of the resolvent G_ii = [(H - z)^-1]_ii of each head (real and imaginary parts,
# scaled by Im z), the learned potentials v_i on the diagonal of H, and the expert the MoE router
# chose for the token. The model is causal: G_ii at position i depends on tokens <= i only.
#
# `WORKDIR` is a run of `python -m bk.main --config configs/bk.py:quick --workdir runs/bk`; if it
# holds no checkpoint, the next cells train one with `bk.train.train_and_evaluate` (quick config).

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
# `WORKDIR`: a finished run (a local path or a mounted drive).

# %% tags=["parameters"]
SMOKE = os.environ.get("K7_NOTEBOOK_SMOKE") == "1"  # CI: tiny sizes
WORKDIR = os.environ.get("K7_NOTEBOOK_WORKDIR", "runs/bk")
TEXT = "To be or not to be that is the question"  # whitespace-tokenised, like the corpus

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
# ## Model and parameters

# %%
from bk import data as bk_data  # noqa: E402
from bk import interpret as bk_interpret  # noqa: E402
from bk import model as bk_model  # noqa: E402
from bk import train as bk_train  # noqa: E402
from configs import bk as bk_configs  # noqa: E402

if not os.path.isdir(os.path.join(WORKDIR, "checkpoints")):
  bk_train.train_and_evaluate(bk_configs.get_config("tiny" if SMOKE else "quick"), WORKDIR)
config = load_config(WORKDIR, bk_configs.get_config)
data = bk_data.load(config.data)
model = bk_model.LanguageModel(bk_train.model_config(config, data.vocab_size))
step = max(checkpoint_manager(WORKDIR).all_steps())
params = restore(WORKDIR, step)["params"]
print(f"{config.model.arch}, {config.model.num_layers} layers x {config.model.num_heads} heads, "
      f"causal={config.model.causal}; checkpoint step {step}")

# %% [markdown]
# ## Your sentence through the model

# %%
tokens = data.tokenizer.encode(TEXT)[: config.model.max_len]
# One label per token, as the model reads it (words, punctuation, end-of-line; <unk> for words
# outside the vocabulary).
labels = [data.tokenizer.decode([t]) for t in tokens]
print(f"{len(tokens)} tokens (vocabulary {data.vocab_size}): "
      + " ".join(labels))
layers = bk_interpret.layer_intermediates(model, params, tokens)
assert len(layers) == config.model.num_layers and layers[0]["G"].shape == (config.model.num_heads,
                                                                              len(tokens))

# %%
pos = np.arange(len(tokens))
fig, axes = plt.subplots(len(layers), 4, figsize=(18, 2.8 * len(layers)), squeeze=False)
for i, lay in enumerate(layers):
  for h in range(lay["G"].shape[0]):
    axes[i, 0].plot(pos, lay["G"][h].real, marker=".", label=f"head {h}")
    axes[i, 1].plot(pos, lay["G"][h].imag, marker=".", label=f"head {h}")
    axes[i, 2].plot(pos, lay["v"][:, h], marker=".", label=f"head {h}")
  axes[i, 3].scatter(pos, lay["expert"], s=25)
  axes[i, 3].set_yticks(range(config.model.num_experts))
  for j, title in enumerate(("Re G_ii · Im z", "Im G_ii · Im z", "potential v_i", "chosen expert")):
    axes[i, j].set_title(f"layer {i}: {title}", fontsize=9)
    axes[i, j].set_xticks(pos)
    axes[i, j].set_xticklabels(labels, rotation=90, fontsize=7)
    axes[i, j].grid(alpha=0.3)
axes[0, 0].legend(fontsize=7)
fig.tight_layout()
show(fig)

# %% [markdown]
# ## Expert usage on this sentence

# %%
fig, axes = plt.subplots(1, len(layers), figsize=(3.5 * len(layers), 2.6), squeeze=False)
for i, lay in enumerate(layers):
  counts = np.bincount(lay["expert"], minlength=config.model.num_experts)
  axes[0, i].bar(range(config.model.num_experts), counts)
  axes[0, i].set_title(f"layer {i}: tokens per expert", fontsize=9)
show(fig)
