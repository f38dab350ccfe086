"""model.kind="legacy_v2": the session-2 NSM (top-k masks, affine couplings, SAGPool-style readout).

Kept as a named variant for comparison. Its two defects (issue 17) are why `nsm.model.NSM`
replaced it: with readout_levels="all" the head reads the L1 R-GCN features of every node
directly (the model contains a flat R-GCN), and its "cycle" applies the exact inverse coupling
to exactly what WHY produced, so retained nodes reconstruct to ~1e-14 by construction and every
dropped node comes back as the same vector C^-1(0), compared with post-R-GCN features rather
than the input.
"""
from __future__ import annotations

import fractions

import flax.linen as nn
import jax
import jax.numpy as jnp
import jraph

from nsm import layers


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


def pool_sizes(n_alive: jax.Array, ratio: float) -> jax.Array:
  """k_i = ceil(ratio * n_i) in exact integer arithmetic (ratio as a fraction, no float round-off)."""
  frac = fractions.Fraction(ratio).limit_denominator(10_000)
  return (n_alive * frac.numerator + frac.denominator - 1) // frac.denominator


def topk_keep(score, alive, n_node, ratio):
  """Per-graph top-k mask: keeps the ceil(ratio * n_i) highest-scoring alive nodes of graph i.

  Static shapes: a lexsort by (graph id, -score) ranks nodes inside their (contiguous) graph.
  """
  n = score.shape[0]
  gid = layers.node_graph_ids(n_node, n)
  n_alive = jax.ops.segment_sum(alive.astype(jnp.int32), gid, num_segments=n_node.shape[0])
  k = pool_sizes(n_alive, ratio)
  key = jnp.where(alive, -score, jnp.inf)
  order = jnp.lexsort((key, gid))
  pos = jnp.zeros(n, jnp.int32).at[order].set(jnp.arange(n, dtype=jnp.int32))
  start = jnp.cumsum(n_node) - n_node
  return alive & (pos - start[gid] < k[gid])


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


class LegacyNSM(nn.Module):
  """3-level NSM of session 2: L1 -WHY-> L2 -WHY-> L3 -> head; WHAT = masked unpool + inverse coupling."""
  cfg: "object"  # nsm.model.NSMConfig

  @nn.compact
  def __call__(self, g: jraph.GraphsTuple, train: bool = False):
    c = self.cfg
    n = g.nodes.shape[0]
    alive = jraph.get_node_padding_mask(g)
    emask = jraph.get_edge_padding_mask(g)
    etype, conf = g.edges["type"], g.edges["conf"]
    stack = lambda name: layers.RGCNStack(c.hidden, c.num_relations, c.num_bases, c.rgcn_layers,  # noqa: E731
                                          c.aggregation, c.dropout, c.rgcn_impl, name=name)
    h1 = stack("rgcn_l1")(g.nodes, g.senders, g.receivers, etype, conf, emask, train)
    c1 = CouplingStack(c.hidden, c.coupling_layers, c.coupling_hidden, name="coupling_12")
    z1 = c1(h1)
    s1 = nn.Dense(1, name="score_12")(z1)[:, 0]
    keep1 = topk_keep(s1, alive, g.n_node, c.pool_ratio)
    u2 = z1 * keep1[:, None]  # WHY output (masked, not compacted)
    x2 = u2 * jnp.tanh(s1)[:, None]  # gated input of the L2 R-GCN, as PyG TopKPooling
    emask2 = emask & keep1[g.senders] & keep1[g.receivers]
    etype2 = etype if c.upper_relations == "keep" else jnp.zeros_like(etype)
    h2 = stack("rgcn_l2")(x2, g.senders, g.receivers, etype2, conf, emask2, train)
    h2 = h2 * keep1[:, None]
    c2 = CouplingStack(c.hidden, c.coupling_layers, c.coupling_hidden, name="coupling_23")
    z2 = c2(h2)
    s2 = nn.Dense(1, name="score_23")(z2)[:, 0]
    keep2 = topk_keep(s2, keep1, g.n_node, c.pool_ratio)
    u3 = z2 * keep2[:, None]
    top = u3 * jnp.tanh(s2)[:, None]
    # WHAT: masked-identity unpool (dropped rows are zero) -> exact inverse coupling.
    rec1, rec2 = c1.inverse(u2), c2.inverse(u3)
    e1 = _level_error(h1, rec1, alive, keep1)
    e2 = _level_error(h2, rec2, keep1, keep2)
    w1, w2 = c.cycle_level_weights
    aux = {"cycle_l1": e1[0], "cycle_l1_retained": e1[1], "cycle_l1_dropped": e1[2],
           "cycle_l2": e2[0], "cycle_l2_retained": e2[1], "cycle_l2_dropped": e2[2],
           "keep1": keep1, "keep2": keep2, "h1": h1, "rec1": rec1, "h2": h2, "rec2": rec2,
           "cycle": w1 * e1[0] + w2 * e2[0]}
    gid = layers.node_graph_ids(g.n_node, n)
    num_graphs = g.n_node.shape[0]
    levels = [("l3", top, keep2)]
    if c.readout_levels == "all":  # SAGPool-style hierarchical readout: L1 features reach the head
      levels = [("l1", h1, alive), ("l2", x2, keep1), ("l3", top, keep2)]
    readouts = [layers.NodeReadout(c.readout, name=f"readout_{lv}")(x, m, gid, num_graphs)
                for lv, x, m in levels]
    feats = [sum(readouts)]
    if c.size_features:
      feats.append(g.globals["size"])
    logits = layers.GraphHead(c.hidden, c.num_classes, c.dropout, name="head")(
        jnp.concatenate(feats, axis=-1), train)
    return logits, aux
