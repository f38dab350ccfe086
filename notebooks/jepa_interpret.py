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
# # H-JEPA interpretability: masks and predictions
#
# For a trained JEPA: sample I-JEPA multi-block masks on test images (context in green, target
# blocks in colours), run the context encoder + predictor, and compare each predicted target
# token with the EMA target encoder's token (layer-normed, as in the loss) by cosine similarity,
# mapped back onto the patch grid. A trivial predictor (the image's mean target token) is shown
# beside it: a useful predictor beats it.
#
# `WORKDIR` is a run of `python -m jepa.main --config configs/jepa.py:quick --workdir runs/jepa`
# (or of `jepa_quickstart`).

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
# `WORKDIR`: a finished run (a local path or a mounted drive).

# %% tags=["parameters"]
SMOKE = os.environ.get("K7_NOTEBOOK_SMOKE") == "1"  # CI: tiny sizes
WORKDIR = os.environ.get("K7_NOTEBOOK_WORKDIR", "runs/jepa")
NUM_IMAGES = 4  # test images shown
MASK_SEED = 0

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
# ## Model, data, masks (package-internal calls: jepa.model / jepa.masking / jepa.loss)

# %%
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from configs import jepa as jepa_configs  # noqa: E402
from jepa import data as jepa_data  # noqa: E402
from jepa import loss as jepa_loss  # noqa: E402
from jepa import masking as jepa_masking  # noqa: E402
from jepa import model as jepa_model  # noqa: E402
from jepa import visualize as jepa_visualize  # noqa: E402

if not os.path.isdir(os.path.join(WORKDIR, "checkpoints")):
  raise FileNotFoundError(f"{WORKDIR}: no checkpoints; run jepa_quickstart or python -m jepa.main first")
config = load_config(WORKDIR, jepa_configs.get_config)
ds = jepa_data.load_dataset(config.data)
vit = jepa_model.vit_config(config.model, config.data.image_size, ds.train_images.shape[-1])
hier = jepa_loss.hierarchy_from_config(config.hierarchy, vit.depth, vit.grid)
step = best_step(WORKDIR, config.train.best_metric, config.train.best_mode)
state = restore(WORKDIR, step)
print(f"checkpoint step {step}; grid {vit.grid}, patch {vit.patch_size}, {hier.num_levels} levels ({hier.kind})")

images_u8 = ds.test_images[:NUM_IMAGES]
num_out = hier.num_levels if hier.kind == "layers" else 1


@jax.jit  # one compiled program (op by op, the first call compiles each operation: ~10 s on a CPU)
def predict(params, target_params, images_u8, key):
  """Normalised images, sampled masks, the predictor's outputs and the layer-normed target tokens."""
  images = jepa_data.resize(jepa_data.normalize(images_u8, ds.mean, ds.std), vit.image_size)
  masks = jepa_masking.sample_masks(key, vit.grid, images_u8.shape[0], config.mask)
  preds = jepa_model.JEPA(vit, num_out).apply({"params": params}, images, *masks)[0]
  tokens = jepa_model.Encoder(vit).apply({"params": target_params}, images)
  return images, masks, preds, jepa_loss.layer_norm(tokens.astype(jnp.float32))


images, masks, preds, targets = predict(state["params"], state["target"]["params"],
                                        jnp.asarray(images_u8), jax.random.PRNGKey(MASK_SEED))
ctx_idx, ctx_valid, tgt_idx, tgt_valid = (np.asarray(m) for m in masks)
targets = np.asarray(targets)  # [B, N, D]
preds = np.asarray(preds)  # [B, M, Kt, D]


def cosine(a, b):
  return np.sum(a * b, -1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1) + 1e-9)

# %% [markdown]
# ## Masks, and how well each target token is predicted

# %%
rows, cols = vit.grid
fig, axes = plt.subplots(NUM_IMAGES, 3, figsize=(10, 3.2 * NUM_IMAGES), squeeze=False)
summary = []
for i in range(NUM_IMAGES):
  overlay = jepa_visualize.mask_overlay(np.asarray(images[i]), vit.patch_size, ctx_idx[i], ctx_valid[i],
                                        tgt_idx[i], tgt_valid[i])
  sim_pred = np.full(rows * cols, np.nan)
  sim_mean = np.full(rows * cols, np.nan)
  mean_token = targets[i].mean(0)
  for m in range(tgt_idx.shape[1]):
    idx = tgt_idx[i, m][tgt_valid[i, m]]
    sim_pred[idx] = cosine(preds[i, m][tgt_valid[i, m]], targets[i][idx])
    sim_mean[idx] = cosine(mean_token[None], targets[i][idx])
  summary.append((np.nanmean(sim_pred), np.nanmean(sim_mean)))
  axes[i, 0].imshow(overlay)
  axes[i, 0].set_title("context (green) and targets", fontsize=9)
  for ax, sim, name in ((axes[i, 1], sim_pred, "predictor"), (axes[i, 2], sim_mean, "mean token")):
    im = ax.imshow(sim.reshape(rows, cols), vmin=-1, vmax=1, cmap="RdBu_r")
    ax.set_title(f"cosine(target, {name}): {np.nanmean(sim):.3f}", fontsize=9)
for ax in axes.ravel():
  ax.set_xticks([])
  ax.set_yticks([])
fig.colorbar(im, ax=axes[:, 1:].ravel().tolist(), shrink=0.6)
show(fig)
pred_sim, mean_sim = np.mean(summary, axis=0)
print(f"mean cosine similarity over the target tokens: predictor {pred_sim:.3f}, mean-token baseline {mean_sim:.3f}")
