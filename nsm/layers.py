"""Shared NSM layers (Flax Linen): sparse and dense (cluster-level) R-GCN, readouts, the graph head."""
from __future__ import annotations

from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax


def node_graph_ids(n_node: jax.Array, num_nodes: int) -> jax.Array:
  """Graph id of every (padded) node row: [num_nodes]."""
  return jnp.repeat(jnp.arange(n_node.shape[0]), n_node, total_repeat_length=num_nodes)


def _basis_and_comp(module, in_features, features, num_relations, num_bases, rows):
  """The basis [B, in, out] and coefficient [rows, B] parameters (B = min(num_bases, R))."""
  b = min(num_bases, num_relations)
  glorot_per_basis = nn.initializers.variance_scaling(
      1.0, "fan_avg", "uniform", in_axis=-2, out_axis=-1, batch_axis=(0,))
  basis = module.param("basis", glorot_per_basis, (b, in_features, features))
  comp = module.param("comp", nn.initializers.xavier_uniform(), (rows, b))
  return basis, comp


def _relation_weights(module, in_features, features, num_relations, num_bases, rows):
  """W_all [in, rows * out] from the basis decomposition W_r = sum_b comp[r, b] basis[b]."""
  basis, comp = _basis_and_comp(module, in_features, features, num_relations, num_bases, rows)
  return jnp.einsum("rb,bfo->fro", comp, basis).reshape(in_features, rows * features)


IMPLS = ("table", "grouped")
TILE = 64  # edges per relation tile of the grouped R-GCN (64 vs 32: layer fwd+bwd 2.7 vs 3.8 ms)


class EdgeTiles(NamedTuple):
  """Edges sorted by relation into tiles of one relation each (the `grouped` R-GCN schedule).

  Slot s = tile * T + k holds one real edge (or nothing: coef 0). Built once per graph batch from
  integer data only (no gradient), shared by every layer of a stack.
  """
  sender: jax.Array  # [S] int32, sender of the edge in slot s (0 for empty slots)
  receiver: jax.Array  # [S] int32
  coef: jax.Array  # [S] message coefficient: 1/|N_r(i)| (pyg_mean), c_e/(deg_i+1) (nsm_mean), 0 empty
  tile_relation: jax.Array  # [S // T] int32, the relation of every tile (0 for unused tiles)
  inv_degree: jax.Array  # [N] 1/(deg_i + 1) (nsm_mean's self-loop weight; ones for pyg_mean)


def edge_tiles(senders, receivers, etype, conf, edge_mask, num_nodes: int, num_relations: int,
               aggregation: str, tile: int = TILE, dtype=jnp.float32) -> EdgeTiles:
  """Sorts the real edges by relation and pads every relation's group to whole tiles of `tile`.

  Static size: ceil(E / tile) + R tiles (each relation wastes < one tile); padding edges
  (edge_mask False) get no slot.
  """
  e, r = etype.shape[0], num_relations
  num_tiles = -(-e // tile) + r
  w = edge_mask.astype(dtype)
  key = jnp.where(edge_mask, etype, r)  # padding edges sort last, into group r (dropped)
  per_rel = jax.ops.segment_sum(edge_mask.astype(jnp.int32), key, num_segments=r + 1)[:r]
  tiles_per_rel = -(-per_rel // tile)
  tile_end = jnp.cumsum(tiles_per_rel)
  edge_start = jnp.cumsum(per_rel) - per_rel
  order = jnp.argsort(key, stable=True)
  sorted_key = key[order]
  rank = jnp.arange(e) - edge_start[jnp.minimum(sorted_key, r - 1)]
  slot = jnp.where(sorted_key < r, (tile_end - tiles_per_rel)[jnp.minimum(sorted_key, r - 1)] * tile
                   + rank, num_tiles * tile)
  slot_edge = jnp.full(num_tiles * tile, e, jnp.int32).at[slot].set(order.astype(jnp.int32),
                                                                    mode="drop")
  if aggregation == "pyg_mean":
    seg = receivers * r + etype
    count = jax.ops.segment_sum(w, seg, num_segments=num_nodes * r)
    coef = w / jnp.maximum(count[seg], 1.0)
    inv_degree = jnp.ones(num_nodes, dtype)
  else:
    inv_degree = 1.0 / (jax.ops.segment_sum(w, receivers, num_segments=num_nodes) + 1.0)
    coef = w * conf.astype(dtype) * inv_degree[receivers]
  pad = lambda a: jnp.concatenate([a, jnp.zeros((1,), a.dtype)])[slot_edge]  # noqa: E731
  tile_relation = jnp.minimum(jnp.searchsorted(tile_end, jnp.arange(num_tiles), side="right"), r - 1)
  return EdgeTiles(pad(senders), pad(receivers), pad(coef), tile_relation.astype(jnp.int32),
                   inv_degree)


class RGCNLayer(nn.Module):
  """R-GCN with basis decomposition W_r = sum_b comp[r, b] basis[b] on a sparse (jraph) graph.

  pyg_mean: x'_i = root x_i + b + sum_r mean_{j in N_r(i)} W_r x_j           (PyG RGCNConv)
  nsm_mean: x'_i = root x_i + b + (sum_{e: j->i} c_e W_{r_e} x_j + W_self x_i) / (deg_i + 1)
            (the original ConfidenceWeightedRGCN; its self-loop gets its own relation row here
            instead of colliding with relation R-1.)

  impl="table": a node-relation table T = x . [W_0 | ... | W_{R-1}] ([N, R, O], one dense matmul
  of N x F x R*O) gathered per edge at row senders * R + type ([E, O]), segment sums by receiver.
  impl="grouped": the edges sorted by relation into tiles of one relation (`edge_tiles`); per tile
  one [T, F] x W_r matmul of the gathered, coefficient-scaled sender features (E x F x O in all,
  padding edges skipped), then a segment sum by receiver. The same function; see nsm/README.md
  (benchmark) for which is faster where.
  """
  features: int
  num_relations: int
  num_bases: int
  aggregation: str = "pyg_mean"
  impl: str = "grouped"
  tile: int = TILE

  @nn.compact
  def __call__(self, x, senders, receivers, etype, conf, edge_mask, tiles: EdgeTiles | None = None):
    n, r = x.shape[0], self.num_relations
    rows = r + (1 if self.aggregation == "nsm_mean" else 0)
    if self.impl == "grouped":
      if tiles is None:
        tiles = edge_tiles(senders, receivers, etype, conf, edge_mask, n, r, self.aggregation,
                           self.tile, x.dtype)
      return self._grouped(x, tiles, rows)
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

  def _grouped(self, x, tiles: EdgeTiles, rows: int):
    f, o, r = x.shape[-1], self.features, self.num_relations
    basis, comp = _basis_and_comp(self, f, o, r, self.num_bases, rows)
    num_tiles = tiles.tile_relation.shape[0]
    w_tiles = jnp.einsum("tb,bfo->tfo", comp[tiles.tile_relation], basis)  # [tiles, F, O]
    xs = (x[tiles.sender] * tiles.coef.astype(x.dtype)[:, None]).reshape(num_tiles, -1, f)
    msg = jnp.einsum("tkf,tfo->tko", xs, w_tiles).reshape(-1, o)
    agg = jax.ops.segment_sum(msg, tiles.receiver, num_segments=x.shape[0])
    if self.aggregation == "nsm_mean":
      agg = agg + (x @ jnp.einsum("b,bfo->fo", comp[r], basis)) * tiles.inv_degree[:, None]
    return agg + nn.Dense(self.features, name="root")(x)


_THREEFRY_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))


def threefry2x32(k1, k2, x1, x2):
  """The Threefry-2x32 hash (20 rounds; Salmon et al. 2011), unrolled: uint32 arrays in and out.

  The same function as JAX's `threefry2x32_p`, whose XLA:CPU lowering is a rolled 5-step while
  loop (copies of the loop state each step, no fusion with the consumer); unrolled, XLA fuses
  the whole hash into one elementwise kernel.
  """
  ks = (k1, k2, k1 ^ k2 ^ np.uint32(0x1BD11BDA))
  x1, x2 = x1 + ks[0], x2 + ks[1]
  for i in range(5):
    for rot in _THREEFRY_ROTATIONS[i % 2]:
      x1 = x1 + x2
      x2 = x1 ^ ((x2 << np.uint32(rot)) | (x2 >> np.uint32(32 - rot)))
    x1 = x1 + ks[(i + 1) % 3]
    x2 = x2 + ks[(i + 2) % 3] + np.uint32(i + 1)
  return x1, x2


def _threefry_key_data(key):
  """uint32[2] key data when `key` is a (raw or typed) threefry2x32 key, else None."""
  if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
    if jax.random.key_impl(key) != jax.random.key_impl(jax.random.key(0, impl="threefry2x32")):
      return None
    return jax.random.key_data(key)
  if jax.config.jax_default_prng_impl != "threefry2x32" or key.shape != (2,):
    return None
  return key


class Dropout(nn.Dropout):
  """flax.linen.Dropout with the same mask, bit for bit, computed by an unrolled Threefry hash.

  nn.Dropout draws mask = uniform(key, shape) < 1 - rate through jax.random (partitionable
  Threefry: one hash of the element's flat index per element, bits = b1 ^ b2, uniform = the top
  23 bits as a float in [0, 1)). This computes the same bits with `threefry2x32` above (tested
  equal to nn.Dropout's output), which on XLA:CPU took the flat R-GCN train step from ~60 to
  ~38 ms (CPU time, nsm/README.md benchmark). Named `Dropout` so that modules keep their
  auto-names (Dropout_0, ...) and hence their dropout rng streams. Falls back to nn.Dropout
  where its bits would differ (non-threefry keys, float64 default dtype, non-partitionable
  Threefry, broadcast_dims, >= 2^32 elements).
  """

  @nn.compact
  def __call__(self, inputs, deterministic: bool | None = None, rng=None):
    det = nn.merge_param("deterministic", self.deterministic, deterministic)
    if self.rate == 0.0 or self.rate == 1.0 or det:
      return super().__call__(inputs, deterministic, rng)
    if rng is None:
      rng = self.make_rng(self.rng_collection)
    key = _threefry_key_data(rng)
    fast = (key is not None and not self.broadcast_dims and inputs.size < 2 ** 32
            and jnp.result_type(float) == jnp.float32 and jax.config.jax_threefry_partitionable)
    if not fast:
      return super().__call__(inputs, deterministic, rng)
    keep = 1.0 - self.rate
    counter = lax.iota(np.uint32, inputs.size).reshape(inputs.shape)  # flat index (high word 0)
    b1, b2 = threefry2x32(key[0], key[1], jnp.zeros_like(counter), counter)
    mantissa = ((b1 ^ b2) >> np.uint32(9)) | np.uint32(0x3F800000)  # jax.random.uniform's float
    uniform = lax.bitcast_convert_type(mantissa, jnp.float32) - jnp.float32(1.0)
    return lax.select(uniform < keep, inputs / keep, jnp.zeros_like(inputs))


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
  impl: str = "grouped"
  tile: int = TILE

  @nn.compact
  def __call__(self, x, senders, receivers, etype, conf, edge_mask, train: bool):
    tiles = None
    if self.impl == "grouped":  # one schedule for all layers
      tiles = edge_tiles(senders, receivers, etype, conf, edge_mask, x.shape[0],
                         self.num_relations, self.aggregation, self.tile, x.dtype)
    for _ in range(self.num_layers):
      x = RGCNLayer(self.features, self.num_relations, self.num_bases, self.aggregation,
                    self.impl, self.tile)(x, senders, receivers, etype, conf, edge_mask, tiles)
      x = nn.relu(nn.LayerNorm()(x))
      x = Dropout(self.dropout, deterministic=not train)(x)
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
      x = Dropout(self.dropout, deterministic=not train)(x)
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
    z = Dropout(self.dropout, deterministic=not train)(nn.relu(nn.Dense(self.hidden)(z)))
    return nn.Dense(self.num_classes)(z)


def count_params(params) -> int:
  return int(sum(x.size for x in jax.tree_util.tree_leaves(params)))
