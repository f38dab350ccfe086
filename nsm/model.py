"""NSM models (Flax Linen): the hierarchical NSM, the flat R-GCN baseline and the legacy variant.

Graphs are jraph `GraphsTuple`s padded by `jraph.pad_with_graphs` with
  nodes [N, F_in], edges {"type": [E] int32, "conf": [E]}, senders/receivers [E], n_node/n_edge [G],
  globals {"label": [G], "size": [G, 2]}.

model.kind="hier" (`NSM`, default): a 3-level hierarchy with learned soft assignments (DiffPool,
Ying et al. 2018): per graph, K2 level-2 nodes and K3 level-3 nodes.
  WHY L1 -> L2:  S1 = softmax(Dense(h1)) [N, K2]; x2 = S1^T h1 / mass (per graph, [G, K2, F]);
                 A2[r] = S1^T A1[r] S1 (typed, weighted cluster edges [G, R, K2, K2]).
  WHY L2 -> L3:  S2 = softmax(Dense(h2)) [G, K2, K3]; x3, A3 likewise.
  Message passing at every level (sparse R-GCN on L1, dense typed R-GCN on L2 and L3); the
  graph head reads the top level (L3) only.
  WHAT L3 -> L2' -> L1': unpool with the assignments (L2'_k = what_23(sum_K S2[k, K] h3_K),
                 L1'_i = what_12(sum_k S1[i, k] L2'_k)): every L1 node gets its own
                 reconstruction (its assignment row) and L1' lives in the input feature space.
  Cycle loss: w1 * ||L1' - x_input||^2 / ||x_input - mean||^2 (over real nodes: 1 - R^2 of the
  input features) + w2 * ||L2' - x2||^2 / ||x2||^2 against stop_gradient(x2), mass-weighted (not
  centred: at init the K2 clusters are near-identical averages, so their variance is ~0).
model.kind="legacy_v2" (`nsm.legacy.LegacyNSM`): the session-2 model, kept for comparison.
`FlatRGCN`: the flat baseline, a separate model (parameter-matched by `matched_flat_width`).
"""
from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import jraph

from nsm import layers
from nsm import legacy

KINDS = ("hier", "legacy_v2")
AGGREGATIONS = ("pyg_mean", "nsm_mean")
RGCN_IMPLS = layers.IMPLS
READOUTS = ("mean", "mean_max")
READOUT_LEVELS = ("l3", "all")
UPPER_RELATIONS = ("keep", "single")


@dataclasses.dataclass(frozen=True)
class NSMConfig:
  """Narrow model config (built from config.model plus the dataset's relation count)."""
  num_relations: int
  kind: str = "hier"
  hidden: int = 64
  num_bases: int = 8
  aggregation: str = "pyg_mean"
  rgcn_impl: str = "grouped"  # sparse R-GCN kernel (layers.RGCNLayer): grouped | table, same function
  rgcn_layers: int = 2  # R-GCN layers per level
  clusters: tuple = (8, 4)  # hier: L2 and L3 nodes per graph (soft-assignment targets)
  coupling_layers: int = 3  # legacy_v2 only
  coupling_hidden: int = 64  # legacy_v2 only
  pool_ratio: float = 0.5  # legacy_v2 only
  upper_relations: str = "keep"  # legacy_v2 only
  readout: str = "mean_max"
  readout_levels: str = "all"  # legacy_v2 only (hier always reads L3)
  size_features: bool = True
  dropout: float = 0.1
  num_classes: int = 2
  cycle_level_weights: tuple = (0.7, 0.3)  # weights of the L1 and L2 reconstruction terms

  def __post_init__(self):
    if not 0.0 < self.pool_ratio <= 1.0:
      raise ValueError(f"config.model.pool_ratio={self.pool_ratio!r} is invalid: allowed (0, 1]")
    for field, allowed in (("kind", KINDS), ("aggregation", AGGREGATIONS),
                           ("rgcn_impl", RGCN_IMPLS), ("readout", READOUTS),
                           ("readout_levels", READOUT_LEVELS),
                           ("upper_relations", UPPER_RELATIONS)):
      if getattr(self, field) not in allowed:
        raise ValueError(f"config.model.{field}={getattr(self, field)!r} is invalid: allowed {allowed}")
    if self.num_relations < 1:
      raise ValueError(f"num_relations={self.num_relations} is invalid: allowed >= 1")
    if len(self.clusters) != 2 or min(self.clusters) < 1:
      raise ValueError(f"config.model.clusters={self.clusters!r} is invalid: allowed two integers >= 1")


@dataclasses.dataclass(frozen=True)
class FlatConfig:
  """The flat R-GCN baseline: `depth` R-GCN layers of width `hidden`, same readout and head."""
  num_relations: int
  depth: int
  hidden: int = 64
  num_bases: int = 8
  aggregation: str = "pyg_mean"
  rgcn_impl: str = "grouped"
  readout: str = "mean_max"
  size_features: bool = True
  dropout: float = 0.1
  num_classes: int = 2

  def __post_init__(self):
    for field, allowed in (("aggregation", AGGREGATIONS), ("rgcn_impl", RGCN_IMPLS)):
      if getattr(self, field) not in allowed:
        raise ValueError(f"config.model.{field}={getattr(self, field)!r} is invalid: allowed {allowed}")


def normalised_error(target, rec, weight, center: bool = True):
  """sum_i w_i ||target_i - rec_i||^2 / sum_i w_i ||target_i - c||^2, c = weighted mean (center) or 0.

  0 iff rec equals target on every row with weight > 0; 1 for predicting c. The denominator is a
  stop-gradient constant. target, rec: [..., F]; weight: [...].
  """
  w = weight.astype(target.dtype)[..., None]
  c = 0.0
  if center:
    c = (target * w).sum(tuple(range(target.ndim - 1))) / jnp.maximum(w.sum(), 1e-6)
  scale = jax.lax.stop_gradient(((target - c) ** 2 * w).sum())
  return ((target - rec) ** 2 * w).sum() / jnp.maximum(scale, 1e-6)


def _readout_and_head(c, top, mass, g, train):
  feats = [layers.ClusterReadout(c.readout, name="readout_l3")(top, mass)]
  if c.size_features:
    feats.append(g.globals["size"])
  return layers.GraphHead(c.hidden, c.num_classes, c.dropout, name="head")(
      jnp.concatenate(feats, axis=-1), train)


class NSM(nn.Module):
  """Hierarchical NSM (model.kind="hier"): soft-assignment pooling, typed coarse edges, L3 head."""
  cfg: NSMConfig

  @nn.compact
  def __call__(self, g: jraph.GraphsTuple, train: bool = False):
    c = self.cfg
    n, num_graphs = g.nodes.shape[0], g.n_node.shape[0]
    k2, k3 = c.clusters
    r = c.num_relations
    alive = jraph.get_node_padding_mask(g)
    emask = jraph.get_edge_padding_mask(g)
    etype = g.edges["type"]
    gid = layers.node_graph_ids(g.n_node, n)
    # L1: sparse R-GCN on the input graph.
    h1 = layers.RGCNStack(c.hidden, r, c.num_bases, c.rgcn_layers, c.aggregation, c.dropout,
                          c.rgcn_impl, name="rgcn_l1")(g.nodes, g.senders, g.receivers, etype, g.edges["conf"],
                                          emask, train)
    # WHY L1 -> L2: soft assignment of every node to K2 clusters of its own graph.
    s1 = jax.nn.softmax(nn.Dense(k2, name="assign_12")(h1), axis=-1) * alive[:, None]
    mass2 = jax.ops.segment_sum(s1, gid, num_segments=num_graphs)  # [G, K2]
    x2 = jax.ops.segment_sum(s1[:, :, None] * h1[:, None, :], gid, num_segments=num_graphs)
    x2 = x2 / (mass2[..., None] + 1e-6)
    outer = (s1[g.senders][:, :, None] * s1[g.receivers][:, None, :]
             * emask.astype(h1.dtype)[:, None, None])
    a2 = jax.ops.segment_sum(outer, gid[g.senders] * r + etype, num_segments=num_graphs * r)
    a2 = a2.reshape(num_graphs, r, k2, k2)
    h2 = layers.DenseRGCNStack(c.hidden, r, c.num_bases, c.rgcn_layers, c.dropout,
                               name="rgcn_l2")(x2, a2, train)
    # WHY L2 -> L3.
    s2 = jax.nn.softmax(nn.Dense(k3, name="assign_23")(h2), axis=-1)  # [G, K2, K3]
    mass3 = jnp.einsum("gk,gkK->gK", mass2, s2)
    x3 = jnp.einsum("gkK,gk,gkf->gKf", s2, mass2, h2) / (mass3[..., None] + 1e-6)
    a3 = jnp.einsum("gkK,grkl,glL->grKL", s2, a2, s2)
    h3 = layers.DenseRGCNStack(c.hidden, r, c.num_bases, c.rgcn_layers, c.dropout,
                               name="rgcn_l3")(x3, a3, train)
    logits = _readout_and_head(c, h3, mass3, g, train)
    # WHAT L3 -> L2' -> L1': unpool through the assignments, concretise with an MLP per level.
    what = lambda name, out: nn.Sequential(  # noqa: E731
        [nn.Dense(c.hidden), nn.relu, nn.Dense(out)], name=name)
    rec2 = what("what_32", c.hidden)(jnp.einsum("gkK,gKf->gkf", s2, h3))
    rec1 = what("what_21", g.nodes.shape[-1])(jnp.einsum("nk,nkf->nf", s1, rec2[gid]))
    e1 = normalised_error(g.nodes, rec1, alive)
    e2 = normalised_error(jax.lax.stop_gradient(x2), rec2, mass2, center=False)
    w1, w2 = c.cycle_level_weights
    aux = {"cycle": w1 * e1 + w2 * e2, "cycle_l1": e1, "cycle_l2": e2, "rec1": rec1,
           "rec2": rec2, "h1": h1, "x2": x2, "h3": h3, "mass3": mass3, "assign_12": s1,
           "assign_23": s2}
    return logits, aux


class FlatRGCN(nn.Module):
  """The flat R-GCN baseline: `depth` sparse R-GCN layers, mean||max readout over all nodes, head."""
  cfg: FlatConfig

  @nn.compact
  def __call__(self, g: jraph.GraphsTuple, train: bool = False):
    c = self.cfg
    alive = jraph.get_node_padding_mask(g)
    h = layers.RGCNStack(c.hidden, c.num_relations, c.num_bases, c.depth, c.aggregation, c.dropout,
                         c.rgcn_impl, name="rgcn")(g.nodes, g.senders, g.receivers, g.edges["type"],
                                      g.edges["conf"], jraph.get_edge_padding_mask(g), train)
    gid = layers.node_graph_ids(g.n_node, g.nodes.shape[0])
    feats = [layers.NodeReadout(c.readout, name="readout")(h, alive, gid, g.n_node.shape[0])]
    if c.size_features:
      feats.append(g.globals["size"])
    logits = layers.GraphHead(c.hidden, c.num_classes, c.dropout, name="head")(
        jnp.concatenate(feats, axis=-1), train)
    return logits, {}


def build_model(cfg) -> nn.Module:
  """NSMConfig -> NSM (hier) or LegacyNSM (legacy_v2); FlatConfig -> FlatRGCN."""
  if isinstance(cfg, FlatConfig):
    return FlatRGCN(cfg)
  if cfg.kind == "legacy_v2":
    return legacy.LegacyNSM(cfg)
  return NSM(cfg)


def param_count(model: nn.Module, g: jraph.GraphsTuple) -> int:
  shapes = jax.eval_shape(model.init, jax.random.PRNGKey(0), g)
  return layers.count_params(shapes)


def matched_flat_width(flat: FlatConfig, target_params: int, g: jraph.GraphsTuple) -> int:
  """Smallest width whose FlatRGCN(depth) has >= target_params parameters (bisection; monotone)."""
  count = lambda w: param_count(FlatRGCN(dataclasses.replace(flat, hidden=w)), g)  # noqa: E731
  lo, hi = 2, 8
  while count(hi) < target_params:
    lo, hi = hi, hi * 2
  while hi - lo > 1:
    mid = (lo + hi) // 2
    lo, hi = (mid, hi) if count(mid) < target_params else (lo, mid)
  # The closer of the two neighbours.
  return hi if abs(count(hi) - target_params) <= abs(count(lo) - target_params) else lo


count_params = layers.count_params
