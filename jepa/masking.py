"""Multi-block masking (I-JEPA) with static output sizes, sampled inside jit.

Unlike the official collator this sampler draws block positions with inclusive bounds (the last
patch row and column are reachable), draws sizes per image, and picks the context subset at
random instead of truncating it to the top rows (no spatial bias). All output shapes depend only
on the grid and the mask config, so the train step compiles once.
"""
from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


class MaskBudget(NamedTuple):
  """Static token budgets of one grid + mask config."""
  num_blocks: int
  max_target_tokens: int  # K_tgt
  context_tokens: int  # K_ctx


def _block_side(scale, aspect, num_patches):
  """(rows, cols) of a block of area `scale * N` and aspect rows / cols (I-JEPA's rounding)."""
  area = scale * num_patches
  return np.round(np.sqrt(area * aspect)), np.round(np.sqrt(area / aspect))


def _check_pair(name, value, lo, hi, lo_open, hi_open):
  ok = (isinstance(value, (tuple, list)) and len(value) == 2 and value[0] <= value[1]
        and (value[0] > lo if lo_open else value[0] >= lo)
        and (value[1] < hi if hi_open else value[1] <= hi))
  if not ok:
    lo_b, hi_b = "(" if lo_open else "[", ")" if hi_open else "]"
    raise ValueError(f"config.mask.{name}={value!r} is invalid: allowed a pair (lo, hi) with lo <= hi "
                     f"inside {lo_b}{lo}, {hi}{hi_b}")


def mask_budget(grid_hw: tuple[int, int], mask_config: Any) -> MaskBudget:
  """Validates `mask_config` and returns the static budgets for a `grid_hw` patch grid."""
  rows, cols = grid_hw
  n = rows * cols
  _check_pair("target_scale", tuple(mask_config.target_scale), 0.0, 1.0, True, True)
  _check_pair("context_scale", tuple(mask_config.context_scale), 0.0, 1.0, True, False)
  _check_pair("target_aspect", tuple(mask_config.target_aspect), 0.0, math.inf, True, True)
  _check_pair("context_aspect", tuple(mask_config.context_aspect), 0.0, math.inf, True, True)
  m = mask_config.num_target_blocks
  if not (isinstance(m, int) and m >= 1):
    raise ValueError(f"config.mask.num_target_blocks={m!r} is invalid: allowed an integer >= 1")
  t_hi, c_lo = mask_config.target_scale[1], mask_config.context_scale[0]
  if m * t_hi >= c_lo:
    raise ValueError(
        f"config.mask.target_scale={tuple(mask_config.target_scale)!r} is invalid: {m} target blocks of "
        f"area up to {t_hi} (total {m * t_hi:.3g}) can cover the smallest context block "
        f"({c_lo}) and leave no context; allowed num_target_blocks * target_scale[1] < context_scale[0]")
  # Exact max of rows * cols over the scale/aspect box: area is increasing in scale, so take the top
  # scale and scan the aspect densely (rows, cols are piecewise constant in the aspect).
  aspects = np.linspace(*mask_config.target_aspect, 20001)
  h, w = _block_side(t_hi, aspects, n)
  h, w = np.clip(h, 1, rows), np.clip(w, 1, cols)
  k_tgt = int((h * w).max())
  if mask_config.max_target_tokens:
    k_tgt = int(mask_config.max_target_tokens)
    if not 1 <= k_tgt <= n:
      raise ValueError(f"config.mask.max_target_tokens={k_tgt!r} is invalid: allowed 0 (auto) or 1..{n}")
  if mask_config.context_tokens:
    k_ctx = int(mask_config.context_tokens)
    if not 1 <= k_ctx <= n:
      raise ValueError(f"config.mask.context_tokens={k_ctx!r} is invalid: allowed 0 (auto) or 1..{n}")
  else:
    # Expected size of (context block minus the union of M independent target blocks).
    t_mean, c_mean = np.mean(mask_config.target_scale), np.mean(mask_config.context_scale)
    k_ctx = max(1, int(round(n * c_mean * (1.0 - t_mean) ** m)))
  return MaskBudget(m, k_tgt, k_ctx)


def _sample_block(u, grid_hw, scale_range, aspect_range, max_tokens):
  """One rectangular block from 4 uniforms `u` in [0, 1): bool grid [rows, cols], (top, left, h, w)."""
  rows, cols = grid_hw
  scale = scale_range[0] + u[0] * (scale_range[1] - scale_range[0])
  aspect = aspect_range[0] + u[1] * (aspect_range[1] - aspect_range[0])
  area = scale * rows * cols
  h = jnp.clip(jnp.round(jnp.sqrt(area * aspect)), 1, rows).astype(jnp.int32)
  w = jnp.clip(jnp.round(jnp.sqrt(area / aspect)), 1, cols).astype(jnp.int32)
  # Guard the static budget against float rounding differences with the host computation.
  h = jnp.minimum(h, max_tokens)
  w = jnp.minimum(w, max_tokens // h)
  # Inclusive upper bound: the block may touch the last row / column (uniform over rows - h + 1).
  top = jnp.minimum(jnp.floor(u[2] * (rows - h + 1)).astype(jnp.int32), rows - h)
  left = jnp.minimum(jnp.floor(u[3] * (cols - w + 1)).astype(jnp.int32), cols - w)
  r = jnp.arange(rows)[:, None]
  c = jnp.arange(cols)[None, :]
  block = (r >= top) & (r < top + h) & (c >= left) & (c < left + w)
  return block, (top, left, h, w)


def _sample_one(u, grid_hw, mask_config, budget: MaskBudget):
  """Masks of one image from uniforms u [4 * (M + 1) + N] (one PRNG call for the whole batch)."""
  rows, cols = grid_hw
  n, m = rows * cols, budget.num_blocks
  u_blocks = u[:4 * (m + 1)].reshape(m + 1, 4)
  blocks, _ = jax.vmap(lambda v: _sample_block(v, grid_hw, mask_config.target_scale,
                                               mask_config.target_aspect,
                                               budget.max_target_tokens))(u_blocks[:m])
  flat = blocks.reshape(m, n)
  # Stable sort of "not in block" keeps the block's tokens first, in row-major order
  # (so index 0 of a block is its top-left corner).
  tgt_idx = jnp.argsort(~flat, axis=-1, stable=True)[:, :budget.max_target_tokens]
  tgt_valid = jnp.arange(budget.max_target_tokens)[None, :] < flat.sum(-1, keepdims=True)
  ctx_block, _ = _sample_block(u_blocks[m], grid_hw, mask_config.context_scale,
                               mask_config.context_aspect, n)
  allowed = ctx_block.reshape(n) & ~flat.any(0)
  # A uniformly random subset of the allowed tokens (no truncation to the top rows).
  score = jnp.where(allowed, u[4 * (m + 1):], -1.0)
  vals, ctx_idx = jax.lax.top_k(score, budget.context_tokens)
  ctx_valid = vals >= 0.0
  # Sort the chosen subset by position (valid first) for readable, deterministic order.
  order = jnp.argsort(jnp.where(ctx_valid, ctx_idx, n + ctx_idx))
  return (ctx_idx[order].astype(jnp.int32), ctx_valid[order],
          tgt_idx.astype(jnp.int32), tgt_valid)


def sample_masks(key: jax.Array, grid_hw: tuple[int, int], batch: int, mask_config: Any):
  """Samples I-JEPA multi-block masks for a batch.

  Args:
    key: PRNG key.
    grid_hw: (patch rows, patch cols).
    batch: number of images.
    mask_config: the `mask` section of configs/jepa.py.
  Returns:
    ctx_idx int32 [batch, K_ctx], ctx_valid bool [batch, K_ctx],
    tgt_idx int32 [batch, M, K_tgt], tgt_valid bool [batch, M, K_tgt] (flat row-major indices).
  """
  grid_hw = (int(grid_hw[0]), int(grid_hw[1]))
  budget = mask_budget(grid_hw, mask_config)
  n = grid_hw[0] * grid_hw[1]
  u = jax.random.uniform(key, (batch, 4 * (budget.num_blocks + 1) + n))
  return jax.vmap(lambda v: _sample_one(v, grid_hw, mask_config, budget))(u)


def block_window_ids(tgt_idx: jax.Array, tgt_valid: jax.Array, grid_cols: int, pool: int):
  """Pooling-window id of each target token within its block (2-D, `pool` x `pool` windows).

  Args:
    tgt_idx, tgt_valid: [..., K_tgt] one block's flat indices (valid first, row-major).
    grid_cols: patch columns of the grid.
    pool: window side in patches.
  Returns:
    int32 [..., K_tgt] window ids in [0, K_tgt); invalid tokens get id K_tgt (dropped).
  """
  k = tgt_idx.shape[-1]
  row, col = tgt_idx // grid_cols, tgt_idx % grid_cols
  top, left = row[..., :1], col[..., :1]  # the first valid token is the top-left corner
  width = jnp.max(jnp.where(tgt_valid, col - left + 1, 0), axis=-1, keepdims=True)
  windows_per_row = (width + pool - 1) // pool
  wid = ((row - top) // pool) * windows_per_row + (col - left) // pool
  return jnp.where(tgt_valid, wid, k).astype(jnp.int32)
