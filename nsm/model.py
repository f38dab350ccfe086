"""NSM model (Flax Linen): R-GCN, affine coupling, per-graph top-k pooling, WHY/WHAT hierarchy.

Graphs are jraph `GraphsTuple`s padded by `jraph.pad_with_graphs` with
  nodes [N, F], edges {"type": [E] int32, "conf": [E]}, senders/receivers [E], n_node/n_edge [G],
  globals {"label": [G], "size": [G, 2]}.
Pooling masks nodes instead of compacting them, so all shapes stay static.
"""
from __future__ import annotations

import dataclasses
import fractions

import flax.linen as nn
import jax
import jax.numpy as jnp
import jraph

AGGREGATIONS = ("pyg_mean", "nsm_mean")
READOUTS = ("mean", "mean_max")
READOUT_LEVELS = ("l3", "all")
UPPER_RELATIONS = ("keep", "single")


@dataclasses.dataclass(frozen=True)
class NSMConfig:
  """Narrow model config (built from config.model plus the dataset's relation count)."""
  num_relations: int
  hidden: int = 64
  num_bases: int = 8
  aggregation: str = "pyg_mean"
  rgcn_layers: int = 2
  coupling_layers: int = 3
  coupling_hidden: int = 64
  pool_ratio: float = 0.5
  upper_relations: str = "keep"
  readout: str = "mean_max"
  readout_levels: str = "all"  # l3: head on pooled L3 nodes only; all: sum of L1, L2, L3 readouts
  size_features: bool = True
  dropout: float = 0.1
  num_classes: int = 2
  hierarchical: bool = True  # False: the flat R-GCN baseline (no pooling, no cycle loss)
  cycle_level_weights: tuple = (0.7, 0.3)  # weights of the L1 and L2 reconstruction terms

  def __post_init__(self):
    if not 0.0 < self.pool_ratio <= 1.0:
      raise ValueError(f"config.model.pool_ratio={self.pool_ratio!r} is invalid: allowed (0, 1]")
    for field, allowed in (("aggregation", AGGREGATIONS), ("readout", READOUTS),
                           ("readout_levels", READOUT_LEVELS),
                           ("upper_relations", UPPER_RELATIONS)):
      if getattr(self, field) not in allowed:
        raise ValueError(f"config.model.{field}={getattr(self, field)!r} is invalid: allowed {allowed}")
    if self.num_relations < 1:
      raise ValueError(f"num_relations={self.num_relations} is invalid: allowed >= 1")


class RGCNLayer(nn.Module):
  """R-GCN with basis decomposition W_r = sum_b comp[r, b] basis[b].

  pyg_mean: x'_i = root x_i + b + sum_r mean_{j in N_r(i)} W_r x_j           (PyG RGCNConv)
  nsm_mean: x'_i = root x_i + b + (sum_{e: j->i} c_e W_{r_e} x_j + W_self x_i) / (deg_i + 1)
            (the original ConfidenceWeightedRGCN; its self-loop gets its own relation row here
            instead of colliding with relation R-1.)

  Computed as a node-relation table T = x . [W_0 | ... | W_{R-1}] ([N, R, O], one dense matmul)
  gathered per edge at row senders * R + type ([E, O]). Its backward is a small [E, O]
  scatter-add plus dense matmuls; the per-basis form (x . basis_b, then a per-edge gather of
  [E, B, O] and a comp[type] mix) has fewer flops but its [E, B, O] gather, scatter and layout
  copies made the XLA:CPU train step 1.3x (planning batch) to 2x (causal batch) slower
  (nsm/README.md, benchmark).
  """
  features: int
  num_relations: int
  num_bases: int
  aggregation: str = "pyg_mean"

  @nn.compact
  def __call__(self, x, senders, receivers, etype, conf, edge_mask):
    n, r = x.shape[0], self.num_relations
    b = min(self.num_bases, r)
    rows = r + (1 if self.aggregation == "nsm_mean" else 0)
    init = nn.initializers.xavier_uniform()
    glorot_per_basis = nn.initializers.variance_scaling(
        1.0, "fan_avg", "uniform", in_axis=-2, out_axis=-1, batch_axis=(0,))
    basis = self.param("basis", glorot_per_basis, (b, x.shape[-1], self.features))
    comp = self.param("comp", init, (rows, b))
    w_all = jnp.einsum("rb,bfo->fro", comp, basis).reshape(x.shape[-1], rows * self.features)
    table = (x @ w_all).reshape(n * rows, self.features)  # row i * rows + t = W_t x_i
    msg = table[senders * rows + etype]
    w = edge_mask.astype(x.dtype)
    if self.aggregation == "pyg_mean":
      seg = receivers * r + etype
      count = jax.ops.segment_sum(w, seg, num_segments=n * r)
      agg = jax.ops.segment_sum(msg * (w / jnp.maximum(count[seg], 1.0))[:, None], receivers,
                                num_segments=n)
    else:
      deg = jax.ops.segment_sum(w, receivers, num_segments=n) + 1.0
      self_msg = table.reshape(n, rows, self.features)[:, r]
      agg = (jax.ops.segment_sum(msg * (w * conf)[:, None], receivers, num_segments=n)
             + self_msg) / deg[:, None]
    return agg + nn.Dense(self.features, name="root")(x)


class AffineCoupling(nn.Module):
  """RealNVP coupling: y_a = x_a, y_b = x_b * exp(tanh(s(x_a))) + t(x_a); exactly invertible.

  The last layer of the s/t MLP is zero-initialised, so the coupling starts as the identity.
  """
  features: int
  split: int
  hidden: int

  def setup(self):
    self.hidden_layers = [nn.Dense(self.hidden), nn.Dense(self.hidden)]
    self.st_out = nn.Dense(2 * (self.features - self.split), kernel_init=nn.initializers.zeros)

  def _st(self, xa):
    h = xa
    for layer in self.hidden_layers:
      h = nn.relu(layer(h))
    st = self.st_out(h)
    width = self.features - self.split
    return jnp.tanh(st[:, :width]), st[:, width:]

  def __call__(self, x):
    xa, xb = x[:, :self.split], x[:, self.split:]
    s, t = self._st(xa)
    return jnp.concatenate([xa, xb * jnp.exp(s) + t], axis=-1)

  def inverse(self, y):
    ya, yb = y[:, :self.split], y[:, self.split:]
    s, t = self._st(ya)
    return jnp.concatenate([ya, (yb - t) * jnp.exp(-s)], axis=-1)


class CouplingStack(nn.Module):
  """Coupling layers with splits F/2, F/3, F/2, ... and a feature flip between layers."""
  features: int
  num_layers: int
  hidden: int

  def setup(self):
    splits = [self.features // 2, self.features // 3]
    self.layers = [AffineCoupling(self.features, splits[i % 2], self.hidden) for i in range(self.num_layers)]

  def __call__(self, x):
    for layer in self.layers:
      x = layer(x)[:, ::-1]
    return x

  def inverse(self, y):
    for layer in reversed(self.layers):
      y = layer.inverse(y[:, ::-1])
    return y


def node_graph_ids(n_node: jax.Array, num_nodes: int) -> jax.Array:
  return jnp.repeat(jnp.arange(n_node.shape[0]), n_node, total_repeat_length=num_nodes)


def pool_sizes(n_alive: jax.Array, ratio: float) -> jax.Array:
  """k_i = ceil(ratio * n_i) in exact integer arithmetic (ratio as a fraction, no float round-off)."""
  frac = fractions.Fraction(ratio).limit_denominator(10_000)
  return (n_alive * frac.numerator + frac.denominator - 1) // frac.denominator


def topk_keep(score, alive, n_node, ratio):
  """Per-graph top-k mask: keeps the ceil(ratio * n_i) highest-scoring alive nodes of graph i.

  Static shapes: a lexsort by (graph id, -score) ranks nodes inside their (contiguous) graph.
  """
  n = score.shape[0]
  gid = node_graph_ids(n_node, n)
  n_alive = jax.ops.segment_sum(alive.astype(jnp.int32), gid, num_segments=n_node.shape[0])
  k = pool_sizes(n_alive, ratio)
  key = jnp.where(alive, -score, jnp.inf)
  order = jnp.lexsort((key, gid))
  pos = jnp.zeros(n, jnp.int32).at[order].set(jnp.arange(n, dtype=jnp.int32))
  start = jnp.cumsum(n_node) - n_node
  return alive & (pos - start[gid] < k[gid])


class RGCNStack(nn.Module):
  cfg: NSMConfig
  num_layers: int

  @nn.compact
  def __call__(self, x, g, etype, edge_mask, train):
    for _ in range(self.num_layers):
      x = RGCNLayer(self.cfg.hidden, self.cfg.num_relations, self.cfg.num_bases,
                    self.cfg.aggregation)(x, g.senders, g.receivers, etype, g.edges["conf"], edge_mask)
      x = nn.relu(nn.LayerNorm()(x))
      x = nn.Dropout(self.cfg.dropout, deterministic=not train)(x)
    return x


def _level_error(h, rec, alive, kept):
  """Reconstruction error normalised by the (stop-gradient) feature variance over alive nodes."""
  a = alive.astype(h.dtype)[:, None]
  cnt = jnp.maximum(a.sum(), 1.0)
  mean = (h * a).sum(0) / cnt
  var = jax.lax.stop_gradient(((h - mean) ** 2 * a).sum() / (cnt * h.shape[-1])) + 1e-6
  sq = ((h - rec) ** 2).mean(-1)
  def term(m):
    m = m.astype(h.dtype)
    return (sq * m).sum() / jnp.maximum(m.sum(), 1.0) / var
  return term(alive), term(kept & alive), term(alive & ~kept)


class NSM(nn.Module):
  """3-level NSM: L1 -WHY-> L2 -WHY-> L3 -> graph head; WHAT = unpool + inverse coupling."""
  cfg: NSMConfig

  @nn.compact
  def __call__(self, g: jraph.GraphsTuple, train: bool = False):
    c = self.cfg
    n = g.nodes.shape[0]
    alive = jraph.get_node_padding_mask(g)
    emask = jraph.get_edge_padding_mask(g)
    etype = g.edges["type"]
    aux = {}
    if not c.hierarchical:
      h = RGCNStack(c, 2 * c.rgcn_layers)(g.nodes, g, etype, emask, train)
      top, keep = h, alive
    else:
      h1 = RGCNStack(c, c.rgcn_layers, name="rgcn_l1")(g.nodes, g, etype, emask, train)
      c1 = CouplingStack(c.hidden, c.coupling_layers, c.coupling_hidden, name="coupling_12")
      z1 = c1(h1)
      s1 = nn.Dense(1, name="score_12")(z1)[:, 0]
      keep1 = topk_keep(s1, alive, g.n_node, c.pool_ratio)
      u2 = z1 * keep1[:, None]  # WHY output (masked, not compacted)
      x2 = u2 * jnp.tanh(s1)[:, None]  # gated input of the L2 R-GCN, as PyG TopKPooling
      emask2 = emask & keep1[g.senders] & keep1[g.receivers]
      etype2 = etype if c.upper_relations == "keep" else jnp.zeros_like(etype)
      h2 = RGCNStack(c, c.rgcn_layers, name="rgcn_l2")(x2, g, etype2, emask2, train)
      h2 = h2 * keep1[:, None]
      c2 = CouplingStack(c.hidden, c.coupling_layers, c.coupling_hidden, name="coupling_23")
      z2 = c2(h2)
      s2 = nn.Dense(1, name="score_23")(z2)[:, 0]
      keep2 = topk_keep(s2, keep1, g.n_node, c.pool_ratio)
      u3 = z2 * keep2[:, None]
      top, keep = u3 * jnp.tanh(s2)[:, None], keep2
      # WHAT: masked-identity unpool (dropped rows are zero) -> exact inverse coupling.
      rec1, rec2 = c1.inverse(u2), c2.inverse(u3)
      e1 = _level_error(h1, rec1, alive, keep1)
      e2 = _level_error(h2, rec2, keep1, keep2)
      w1, w2 = c.cycle_level_weights
      aux = {"cycle_l1": e1[0], "cycle_l1_retained": e1[1], "cycle_l1_dropped": e1[2],
             "cycle_l2": e2[0], "cycle_l2_retained": e2[1], "cycle_l2_dropped": e2[2],
             "keep1": keep1, "keep2": keep2, "h1": h1, "rec1": rec1, "h2": h2, "rec2": rec2}
      aux["cycle"] = w1 * e1[0] + w2 * e2[0]
    gid = node_graph_ids(g.n_node, n)
    levels = [(top, keep)]
    if c.hierarchical and c.readout_levels == "all":  # SAGPool-style hierarchical readout
      levels = [(h1, alive), (x2, keep1), (top, keep)]
    readouts = [self._readout(x, m, gid, g.n_node.shape[0]) for x, m in levels]
    feats = [sum(readouts)]
    if c.size_features:
      feats.append(g.globals["size"])
    z = jnp.concatenate(feats, axis=-1)
    z = nn.Dropout(c.dropout, deterministic=not train)(nn.relu(nn.Dense(c.hidden)(z)))
    return nn.Dense(c.num_classes)(z), aux

  def _readout(self, x, keep, gid, num_graphs):
    """Per-graph mean (and max) over the kept nodes: [G, F] or [G, 2F]."""
    m = keep.astype(x.dtype)[:, None]
    cnt = jax.ops.segment_sum(m, gid, num_segments=num_graphs)
    out = [jax.ops.segment_sum(x * m, gid, num_segments=num_graphs) / jnp.maximum(cnt, 1.0)]
    if self.cfg.readout == "mean_max":
      mx = jax.ops.segment_max(jnp.where(keep[:, None], x, -jnp.inf), gid, num_segments=num_graphs)
      out.append(jnp.where(cnt > 0, mx, 0.0))
    return jnp.concatenate(out, axis=-1)


def count_params(params) -> int:
  return int(sum(x.size for x in jax.tree_util.tree_leaves(params)))
