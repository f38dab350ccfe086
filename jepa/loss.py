"""Hierarchical JEPA loss: token level plus 2-D pooled levels inside each target block."""
from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jepa import masking

LOSS_KINDS = ("smooth_l1", "l2")
HIERARCHY_KINDS = ("pool", "layers")


class Hierarchy(NamedTuple):
  """Validated hierarchy spec."""
  kind: str
  weights: tuple[float, ...]
  layers: tuple[int, ...]  # 1-based target-encoder block per level (kind=layers)

  @property
  def num_levels(self) -> int:
    return len(self.weights)


def hierarchy_from_config(h: Any, encoder_depth: int, grid_hw: tuple[int, int]) -> Hierarchy:
  """Validates `config.hierarchy` (kind, weights, layers) and returns a Hierarchy."""
  if h.kind not in HIERARCHY_KINDS:
    raise ValueError(f"config.hierarchy.kind={h.kind!r} is invalid: allowed {HIERARCHY_KINDS}")
  weights = tuple(float(w) for w in h.weights)
  if not weights or any(w < 0 for w in weights) or weights[0] <= 0:
    raise ValueError(f"config.hierarchy.weights={h.weights!r} is invalid: allowed a non-empty tuple of "
                     "non-negative weights with weights[0] > 0")
  layers = tuple(int(x) for x in h.layers)
  if h.kind == "pool":
    max_level = max(0, min(grid_hw).bit_length() - 1)  # 2^l <= grid side
    if len(weights) - 1 > max_level:
      raise ValueError(f"config.hierarchy.weights={h.weights!r} is invalid: level {len(weights) - 1} pools "
                       f"{2 ** (len(weights) - 1)}x{2 ** (len(weights) - 1)} patches on a {grid_hw} grid; "
                       f"allowed at most {max_level + 1} levels")
    layers = (0,) * len(weights)
  else:
    if len(layers) < len(weights) or any(not 0 <= x <= encoder_depth for x in layers):
      raise ValueError(f"config.hierarchy.layers={h.layers!r} is invalid: allowed one block index in "
                       f"0..{encoder_depth} (0 = last) per level ({len(weights)} levels)")
    layers = tuple(x or encoder_depth for x in layers[:len(weights)])
  return Hierarchy(h.kind, weights, layers)


def layer_norm(x: jax.Array, eps: float = 1e-6) -> jax.Array:
  """Parameter-free layer norm over the last axis (the target normalisation of I-JEPA)."""
  mean = x.mean(-1, keepdims=True)
  var = jnp.square(x - mean).mean(-1, keepdims=True)
  return (x - mean) * jax.lax.rsqrt(var + eps)


def elementwise_loss(pred: jax.Array, target: jax.Array, kind: str) -> jax.Array:
  """smooth-L1 (beta 1) or squared error, elementwise."""
  d = pred - target
  if kind == "smooth_l1":
    a = jnp.abs(d)
    return jnp.where(a < 1.0, 0.5 * d * d, a - 0.5)
  if kind == "l2":
    return d * d
  raise ValueError(f"config.loss.kind={kind!r} is invalid: allowed {LOSS_KINDS}")


def masked_mean_loss(pred, target, valid, kind):
  """Mean of the loss over valid tokens x features. pred/target [..., K, D], valid [..., K]."""
  per_token = elementwise_loss(pred, target, kind).mean(-1)
  w = valid.astype(per_token.dtype)
  return (per_token * w).sum() / jnp.maximum(w.sum(), 1.0)


def pool_in_blocks(x, tgt_idx, tgt_valid, grid_cols, pool):
  """Averages target tokens over `pool` x `pool` windows of the 2-D grid inside each block.

  x [B, M, K, D]; tgt_idx/valid [B, M, K]. Returns pooled [B, M, K, D] (window-major; the first
  windows are real) and window validity [B, M, K].
  """
  k = tgt_idx.shape[-1]
  wid = masking.block_window_ids(tgt_idx, tgt_valid, grid_cols, pool)
  onehot = jax.nn.one_hot(wid, k, dtype=x.dtype)  # invalid tokens (id K) map to all-zero rows
  counts = onehot.sum(-2)  # [B, M, K windows]
  pooled = jnp.einsum("bmtw,bmtd->bmwd", onehot, x) / jnp.maximum(counts, 1.0)[..., None]
  return pooled, counts > 0


def target_layers_needed(hier: Hierarchy) -> bool:
  return hier.kind == "layers"


def level_targets(final_tokens, layer_outputs, hier: Hierarchy):
  """Parameter-free, stop-gradient per-level target tokens [L, B, N, D] (layer-normed)."""
  if hier.kind == "pool":
    return jax.lax.stop_gradient(layer_norm(final_tokens))[None]
  # Intermediate block outputs get the encoder's final LayerNorm statistics without its affine.
  outs = [final_tokens if l == len(layer_outputs) else layer_outputs[l - 1] for l in hier.layers]
  return jax.lax.stop_gradient(jnp.stack([layer_norm(o) for o in outs]))


def hierarchical_loss(preds, targets, tgt_idx, tgt_valid, hier: Hierarchy, kind: str, grid_cols: int):
  """Weighted sum of per-level losses.

  Args:
    preds: [H, B, M, K, D] predictor outputs (H = 1 for kind=pool, = levels for kind=layers).
    targets: [H, B, N, D] layer-normed target-encoder tokens (stop-gradient).
    tgt_idx, tgt_valid: [B, M, K].
  Returns:
    (total loss, {"loss/level_l": value}).
  """
  b, m, k = tgt_idx.shape
  total, per_level = 0.0, {}
  for level, weight in enumerate(hier.weights):
    head = 0 if hier.kind == "pool" else level
    tgt = jnp.take_along_axis(targets[head], tgt_idx.reshape(b, m * k)[..., None], axis=1)
    tgt = tgt.reshape(b, m, k, -1)
    pred, valid = preds[head], tgt_valid
    if hier.kind == "pool" and level > 0:
      pred, valid = pool_in_blocks(pred, tgt_idx, tgt_valid, grid_cols, 2 ** level)
      tgt, _ = pool_in_blocks(tgt, tgt_idx, tgt_valid, grid_cols, 2 ** level)
    loss = masked_mean_loss(pred, tgt, valid, kind)
    per_level[f"loss/level_{level}"] = loss
    total = total + weight * loss
  return total, per_level
