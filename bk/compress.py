"""Post-training compression of the original's Step 4: magnitude pruning and int8 quantisation.

Applied to every weight matrix (leaves with ndim >= 2: kernels, experts, embeddings); biases,
LayerNorm and bk_scale stay float32. Quantisation is symmetric per output channel: each column
(reduction over axis -2) gets scale = max|w| / 127 and w ~ round(w / scale) * scale. The model is
evaluated with the de-quantised weights, which is exactly what an int8-weight kernel computes.
"""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

PyTree = Any


def _is_matrix(x) -> bool:
  return hasattr(x, "ndim") and x.ndim >= 2


def prune(params: PyTree, threshold: float) -> PyTree:
  """Zeros matrix entries with |w| < threshold."""
  return jax.tree.map(lambda w: jnp.where(jnp.abs(w) < threshold, 0.0, w) if _is_matrix(w)
                      else w, params)


def quantize_int8(w: jax.Array) -> tuple[jax.Array, jax.Array]:
  """w: [..., in, out] -> (int8 codes like w, float32 scales [..., 1, out])."""
  scale = jnp.max(jnp.abs(w), axis=-2, keepdims=True) / 127.0
  scale = jnp.where(scale == 0, 1.0, scale)
  return jnp.clip(jnp.round(w / scale), -127, 127).astype(jnp.int8), scale


def fake_quantize(params: PyTree) -> PyTree:
  """Every matrix replaced by its de-quantised int8 version."""
  def f(w):
    if not _is_matrix(w):
      return w
    q, s = quantize_int8(w)
    return q.astype(jnp.float32) * s
  return jax.tree.map(f, params)


def compress(params: PyTree, *, int8: bool, prune_threshold: float) -> tuple[PyTree, dict]:
  """Pruned and/or int8 weights plus {"sparsity", "bytes_float32", "bytes_compressed", "ratio"}.

  bytes_compressed counts dense storage: 1 byte per int8 matrix entry + 4 per scale (4 per entry
  without int8) + 4 per vector entry; "sparsity" is the zero fraction of the matrices (not
  exploited by the dense byte count).
  """
  out = prune(params, prune_threshold) if prune_threshold > 0 else params
  if int8:
    out = fake_quantize(out)
  leaves = jax.tree.leaves(out)
  mats = [w for w in leaves if _is_matrix(w)]
  n_mat = sum(int(np.prod(w.shape)) for w in mats)
  n_vec = sum(int(np.prod(w.shape)) for w in leaves if not _is_matrix(w))
  n_scales = sum(int(np.prod(w.shape[:-2] + w.shape[-1:])) for w in mats)
  zeros = sum(int(jnp.sum(w == 0)) for w in mats)
  full = 4 * (n_mat + n_vec)
  small = (n_mat + 4 * n_scales if int8 else 4 * n_mat) + 4 * n_vec
  return out, {"sparsity": zeros / max(n_mat, 1), "bytes_float32": full,
               "bytes_compressed": small, "ratio": full / small}
