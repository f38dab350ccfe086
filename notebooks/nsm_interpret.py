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
# # NSM interpretability: the pooled hierarchy of one graph
#
# One test graph through a trained NSM: the L1 graph (all nodes), the nodes kept by the first
# top-k pooling (L2) and by the second (L3), with the edges that survive between kept nodes;
# the prediction and the label. Pooling is learned (score = linear function of the coupled node
# features), so which nodes survive is what the model found informative.
#
# `WORKDIR` is a run of `python -m nsm.main --config configs/nsm.py:quick --workdir runs/nsm_causal`;
# if it holds no checkpoint, the next cells train one with `nsm.train.train_and_evaluate`.

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
# `WORKDIR`: a finished run (a local path or a mounted drive).

# %% tags=["parameters"]
SMOKE = os.environ.get("K7_NOTEBOOK_SMOKE") == "1"  # CI: tiny sizes
WORKDIR = os.environ.get("K7_NOTEBOOK_WORKDIR", "runs/nsm_causal")
GRAPH = 0  # index into the test split

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
# ## Model and one graph (package-internal calls: nsm.data / nsm.graphs / nsm.model)

# %%
import jax  # noqa: E402
import networkx as nx  # noqa: E402

from configs import nsm as nsm_configs  # noqa: E402
from nsm import data as nsm_data  # noqa: E402
from nsm import graphs as nsm_graphs  # noqa: E402
from nsm import model as nsm_model  # noqa: E402
from nsm import train as nsm_train  # noqa: E402

if not os.path.isdir(os.path.join(WORKDIR, "checkpoints")):
  nsm_train.train_and_evaluate(nsm_configs.get_config("tiny" if SMOKE else "quick"), WORKDIR)
c = load_config(WORKDIR, nsm_configs.get_config)
dataset = nsm_data.build_dataset(c.domain, c.data.mode, c.data.num_graphs, c.seed,
                                 feature_dim=c.data.feature_dim, inverse_edges=c.data.inverse_edges)
splits = nsm_data.split_indices(len(dataset.graphs), c.data.split, c.seed)
index = int(splits["test"][GRAPH])
graph = dataset.graphs[index]
batch = nsm_graphs.batch_graphs([graph], nsm_graphs.padding_budget([graph], 1), dataset.num_relations)
model = nsm_model.NSM(nsm_train.model_config(c, dataset.num_relations))
step = max(checkpoint_manager(WORKDIR).all_steps())
best_params = restore(WORKDIR, step)["best_params"]
# jitted: one compiled program (op by op, the first call compiles each operation: seconds on a CPU)
logits, aux = jax.jit(model.apply, static_argnums=2)(best_params, batch, False)
n = int(graph.n_node[0])
if "keep1" in aux:  # legacy_v2: TopK keep masks
  keep1, keep2 = np.asarray(aux["keep1"])[:n], np.asarray(aux["keep2"])[:n]
else:  # soft assignments: each cluster drawn at its strongest member (L3 among the L2 ones)
  s1 = np.asarray(aux["assign_12"])[:n]
  s13 = s1 @ np.asarray(aux["assign_23"])[0]
  def representatives(weights, allowed):
    keep = np.zeros(n, bool)
    c = np.argmax(weights, axis=1)
    for k in range(weights.shape[1]):
      members = np.flatnonzero((c == k) & allowed)
      if len(members):
        keep[members[np.argmax(weights[members, k])]] = True
    return keep
  keep1 = representatives(s1, np.ones(n, bool))
  keep2 = representatives(s13, keep1)
print(f"{c.domain} graph {index}: {n} nodes, {int(graph.n_edge[0])} edges; label "
      f"{int(dataset.labels[index])}, predicted {int(np.argmax(np.asarray(logits[0])))} "
      f"(logits {np.round(np.asarray(logits[0]), 3).tolist()})")
print(f"kept: L2 {int(keep1.sum())}/{n}, L3 {int(keep2.sum())}/{n}")
assert keep2.sum() <= keep1.sum() <= n and not np.any(keep2 & ~keep1)

# %% [markdown]
# ## The hierarchy

# %%
senders, receivers = np.asarray(graph.senders), np.asarray(graph.receivers)
etype = np.asarray(graph.edges["type"])
g_nx = nx.DiGraph()
g_nx.add_nodes_from(range(n))
g_nx.add_edges_from(zip(senders.tolist(), receivers.tolist()))
layout = nx.spring_layout(g_nx.to_undirected(), seed=0)
fig, axes = plt.subplots(1, 3, figsize=(16, 5))
for ax, (name, kept) in zip(axes, (("L1: all nodes", np.ones(n, bool)), ("L2: after pooling 1", keep1),
                                   ("L3: after pooling 2", keep2))):
  nodes = [i for i in range(n) if kept[i]]
  edges = [(s, r) for s, r in zip(senders.tolist(), receivers.tolist()) if kept[s] and kept[r]]
  nx.draw_networkx_nodes(g_nx, layout, nodelist=[i for i in range(n) if not kept[i]], ax=ax,
                         node_color="lightgrey", node_size=120)
  nx.draw_networkx_nodes(g_nx, layout, nodelist=nodes, ax=ax, node_color="tab:orange", node_size=220)
  nx.draw_networkx_edges(g_nx, layout, edgelist=edges, ax=ax, alpha=0.5, arrows=True)
  nx.draw_networkx_labels(g_nx, layout, labels={i: str(i) for i in nodes}, ax=ax, font_size=7)
  ax.set_title(f"{name} ({len(nodes)} nodes, {len(edges)} edges)", fontsize=10)
  ax.axis("off")
show(fig)
