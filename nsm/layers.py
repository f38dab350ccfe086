"""Shared NSM layers (Flax Linen): sparse and dense (cluster-level) R-GCN, readouts, the graph head."""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp


def node_graph_ids(n_node: jax.Array, num_nodes: int) -> jax.Array:
  """Graph id of every (padded) node row: [num_nodes]."""
  return jnp.repeat(jnp.arange(n_node.shape[0]), n_node, total_repeat_length=num_nodes)


def _relation_weights(module, in_features, features, num_relations, num_bases, rows):
  """W_all [in, rows * out] from the basis decomposition W_r = sum_b comp[r, b] basis[b]."""
  b = min(num_bases, num_relations)
  glorot_per_basis = nn.initializers.variance_scaling(
      1.0, "fan_avg", "uniform", in_axis=-2, out_axis=-1, batch_axis=(0,))
  basis = module.param("basis", glorot_per_basis, (b, in_features, features))
  comp = module.param("comp", nn.initializers.xavier_uniform(), (rows, b))
  return jnp.einsum("rb,bfo->fro", comp, basis).reshape(in_features, rows * features)


class RGCNLayer(nn.Module):
  """R-GCN with basis decomposition W_r = sum_b comp[r, b] basis[b] on a sparse (jraph) graph.

  pyg_mean: x'_i = root x_i + b + sum_r mean_{j in N_r(i)} W_r x_j           (PyG RGCNConv)
  nsm_mean: x'_i = root x_i + b + (sum_{e: j->i} c_e W_{r_e} x_j + W_self x_i) / (deg_i + 1)
            (the original ConfidenceWeightedRGCN; its self-loop gets its own relation row here
            instead of colliding with relation R-1.)

  Computed as a node-relation table T = x . [W_0 | ... | W_{R-1}] ([N, R, O], one dense matmul)
  gathered per edge at row senders * R + type ([E, O]); the per-basis form ([E, B, O] gathers and
  layout copies) made the XLA:CPU train step 1.3-2x slower (nsm/README.md, benchmark).
  """
  features: int
  num_relations: int
  num_bases: int
  aggregation: str = "pyg_mean"

  @nn.compact
  def __call__(self, x, senders, receivers, etype, conf, edge_mask):
    n, r = x.shape[0], self.num_relations
    rows = r + (1 if self.aggregation == "nsm_mean" else 0)
    w_all = _relation_weights(self, x.shape[-1], self.features, r, self.num_bases, rows)
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


class DenseRGCNLayer(nn.Module):
  """The pyg_mean R-GCN on weighted cluster graphs: x [G, K, F], adj [G, R, K, K] (k -> l).

  x'_l = root x_l + b + sum_r (sum_k adj[r, k, l] W_r x_k) / max(sum_k adj[r, k, l], 1)
  (a soft, per-relation mean; equal to RGCNLayer's pyg_mean when adj holds 0/1 edge counts <= 1).
  """
  features: int
  num_relations: int
  num_bases: int

  @nn.compact
  def __call__(self, x, adj):
    g, k, f = x.shape
    r = self.num_relations
    w_all = _relation_weights(self, f, self.features, r, self.num_bases, r)
    table = (x @ w_all).reshape(g, k, r, self.features)
    norm = adj / jnp.maximum(adj.sum(2, keepdims=True), 1.0)
    agg = jnp.einsum("grkl,gkro->glo", norm, table)
    return agg + nn.Dense(self.features, name="root")(x)


class RGCNStack(nn.Module):
  """`num_layers` x (R-GCN -> LayerNorm -> ReLU -> dropout) on a sparse graph."""
  features: int
  num_relations: int
  num_bases: int
  num_layers: int
  aggregation: str = "pyg_mean"
  dropout: float = 0.0

  @nn.compact
  def __call__(self, x, senders, receivers, etype, conf, edge_mask, train: bool):
    for _ in range(self.num_layers):
      x = RGCNLayer(self.features, self.num_relations, self.num_bases, self.aggregation)(
          x, senders, receivers, etype, conf, edge_mask)
      x = nn.relu(nn.LayerNorm()(x))
      x = nn.Dropout(self.dropout, deterministic=not train)(x)
    return x


class DenseRGCNStack(nn.Module):
  """`num_layers` x (dense R-GCN -> LayerNorm -> ReLU -> dropout) on cluster graphs."""
  features: int
  num_relations: int
  num_bases: int
  num_layers: int
  dropout: float = 0.0

  @nn.compact
  def __call__(self, x, adj, train: bool):
    for _ in range(self.num_layers):
      x = DenseRGCNLayer(self.features, self.num_relations, self.num_bases)(x, adj)
      x = nn.relu(nn.LayerNorm()(x))
      x = nn.Dropout(self.dropout, deterministic=not train)(x)
    return x


class NodeReadout(nn.Module):
  """Per-graph mean (and max) over the kept nodes of a sparse level: [G, F] or [G, 2F]."""
  readout: str = "mean_max"

  @nn.compact
  def __call__(self, x, keep, gid, num_graphs):
    m = keep.astype(x.dtype)[:, None]
    cnt = jax.ops.segment_sum(m, gid, num_segments=num_graphs)
    out = [jax.ops.segment_sum(x * m, gid, num_segments=num_graphs) / jnp.maximum(cnt, 1.0)]
    if self.readout == "mean_max":
      mx = jax.ops.segment_max(jnp.where(keep[:, None], x, -jnp.inf), gid, num_segments=num_graphs)
      out.append(jnp.where(cnt > 0, mx, 0.0))
    return jnp.concatenate(out, axis=-1)


class ClusterReadout(nn.Module):
  """Per-graph mass-weighted mean (and max over clusters with mass) of x [G, K, F] -> [G, (2)F]."""
  readout: str = "mean_max"

  @nn.compact
  def __call__(self, x, mass):
    w = mass[..., None]
    out = [(x * w).sum(1) / jnp.maximum(w.sum(1), 1e-6)]
    if self.readout == "mean_max":
      has = mass > 1e-6
      mx = jnp.where(has[..., None], x, -jnp.inf).max(1)
      out.append(jnp.where(has.any(1)[:, None], mx, 0.0))
    return jnp.concatenate(out, axis=-1)


class GraphHead(nn.Module):
  """MLP head: [readout || size features] -> Dense(hidden) -> ReLU -> dropout -> Dense(classes)."""
  hidden: int
  num_classes: int
  dropout: float = 0.0

  @nn.compact
  def __call__(self, z, train: bool):
    z = nn.Dropout(self.dropout, deterministic=not train)(nn.relu(nn.Dense(self.hidden)(z)))
    return nn.Dense(self.num_classes)(z)


def count_params(params) -> int:
  return int(sum(x.size for x in jax.tree_util.tree_leaves(params)))
