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
# # g2 interpretability: torsion density and Laplacian spectra
#
# For a trained G2-structure on T^7: the pointwise torsion density |dphi|^2_g + |dpsi|^2_g of
# the learned phi on a coordinate 2-plane of the torus (the other five coordinates fixed),
# beside the same map for the starting structure phi_bar = phi0 + d beta; then the spectra of the
# Hodge-Laplacian Rayleigh-Ritz problems behind the Betti-number estimates (eigenvalues below
# the zero cut count harmonic forms).
#
# `WORKDIR` is a run of `python -m g2.main --config configs/g2.py:quick --workdir runs/g2`; if it
# holds no checkpoint, the next cells train one with `g2.train.train_and_evaluate`.

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
if importlib.util.find_spec("g2") is None:
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
WORKDIR = os.environ.get("K7_NOTEBOOK_WORKDIR", "runs/g2")
PLANE = (0, 1)  # the two coordinates spanning the slice
OFFSET = 0.5  # value of the other five coordinates
GRID = 12 if SMOKE else 48  # points per side of the slice

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
# ## The learned phi (package-internal calls: g2.problems builds phi from the saved parameters)

# %%
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from configs import g2 as g2_configs  # noqa: E402
from g2 import g2form  # noqa: E402
from g2 import problems as g2_problems  # noqa: E402
from g2 import train as g2_train  # noqa: E402

if not os.path.isdir(os.path.join(WORKDIR, "checkpoints")):
  g2_train.train_and_evaluate(g2_configs.get_config("tiny" if SMOKE else "quick"), WORKDIR)
config = load_config(WORKDIR, g2_configs.get_config)
if config.problem.name != "torus":
  raise ValueError(f"{WORKDIR}: problem {config.problem.name!r}; this notebook maps the torus problem")
problem = g2_problems.make_problem(config)
step = best_step(WORKDIR, "eval/torsion")
params = restore(WORKDIR, step)["params"]
learned_phi = problem.phi_fn(params["phi"])
background_phi = problem.background_phi_fn()
print(f"checkpoint step {step} (lowest recorded eval/torsion among those on disk)")

# %% [markdown]
# ## Torsion density on a 2-plane

# %%
t = np.linspace(0.0, 2 * np.pi, GRID, endpoint=False)
a, b = np.meshgrid(t, t, indexing="ij")
xs = np.full((GRID * GRID, 7), OFFSET, np.float32)
xs[:, PLANE[0]], xs[:, PLANE[1]] = a.ravel(), b.ravel()


def density_map(phi_fn):
  def one(x):
    tor = g2form.torsion(phi_fn)(x)
    return tor["dphi_sq"] + tor["dpsi_sq"], tor["sqrt_det_g"]
  dens, vol = jax.jit(jax.vmap(one))(jnp.asarray(xs))
  return np.asarray(dens).reshape(GRID, GRID), np.asarray(vol).reshape(GRID, GRID)


maps = {"phi_bar = phi0 + d beta (start)": density_map(background_phi),
        f"learned phi (step {step})": density_map(learned_phi)}
lo = min(np.log10(np.maximum(d, 1e-30)).min() for d, _ in maps.values())
hi = max(np.log10(np.maximum(d, 1e-30)).max() for d, _ in maps.values())
fig, axes = plt.subplots(1, 3, figsize=(15, 4))
for ax, (name, (dens, _)) in zip(axes, maps.items()):
  im = ax.imshow(np.log10(np.maximum(dens, 1e-30)).T, origin="lower", extent=(0, 2 * np.pi, 0, 2 * np.pi),
                 vmin=lo, vmax=hi, cmap="magma")
  ax.set_title(f"log10 torsion density: {name}", fontsize=9)
  ax.set_xlabel(f"x{PLANE[0]}")
  ax.set_ylabel(f"x{PLANE[1]}")
fig.colorbar(im, ax=axes[:2])
im_vol = axes[2].imshow(list(maps.values())[1][1].T, origin="lower", extent=(0, 2 * np.pi, 0, 2 * np.pi))
axes[2].set_title("sqrt(det g) of the learned phi", fontsize=9)
fig.colorbar(im_vol, ax=axes[2])
show(fig)
for name, (dens, vol) in maps.items():
  print(f"{name}: mean density {dens.mean():.3e}, max {dens.max():.3e}")

# %% [markdown]
# ## Spectra behind the Betti estimates
# From the run's `final_validation.json`: the Rayleigh-Ritz eigenvalues of the Hodge Laplacian
# with the learned metric, on a Fourier trial space and on the learned harmonic heads.

# %%
report = read_json(WORKDIR, "final_validation.json")
betti = {k: v for k, v in report.get("betti", {}).items() if isinstance(v, dict) and "eigenvalues" in v}
fig, axes = plt.subplots(1, max(len(betti), 1), figsize=(4.5 * max(len(betti), 1), 3.4), squeeze=False)
for ax, (name, b) in zip(axes[0], betti.items()):
  lam = np.sort(np.asarray(b["eigenvalues"], np.float64))
  ax.semilogy(np.arange(1, len(lam) + 1), np.maximum(lam, 1e-16), ".")
  if b.get("zero_cut") is not None:
    ax.axhline(b["zero_cut"], color="red", ls=":", label="zero cut")
  if b.get("expected_on_T7"):
    ax.axvline(b["expected_on_T7"] + 0.5, color="grey", ls="--", label=f"b = {b['expected_on_T7']} on T^7")
  ax.set_title(f"{name}: estimate {b.get('betti_estimate')}", fontsize=9)
  ax.set_xlabel("index")
  ax.legend(fontsize=7)
show(fig)
