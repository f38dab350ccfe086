"""AdamW with a bias-correction count per parameter, and optimizer-state surgery for growth.

optax's Adam keeps ONE shared `count`. A block inserted at step 3000 with zero moments would then
be bias-corrected as if it had 3000 steps of history: its first update is
(1-b1) g / sqrt((1-b2) g^2) = 3.16x lr*sign(g) for (0.9, 0.999), growing to ~6.5x at step 10.
Here every leaf carries its own count, so a new parameter's first update is lr*sign(g), exactly as
PyTorch (per-parameter `step`) does. The learning rate is applied by the train step (it depends on
the FLOP budget spent), so the transformation returns the unscaled AdamW direction.
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping, NamedTuple

import jax
import jax.numpy as jnp
import optax

PyTree = Any


class PerLeafAdamState(NamedTuple):
  count: PyTree  # int32 scalar per parameter leaf
  mu: PyTree
  nu: PyTree


def scale_by_adam_per_leaf(b1: float = 0.9, b2: float = 0.999,
                           eps: float = 1e-8) -> optax.GradientTransformation:
  """Adam's direction m_hat / (sqrt(v_hat) + eps) with an independent step count per leaf."""

  def init(params):
    return PerLeafAdamState(
        count=jax.tree.map(lambda _: jnp.zeros((), jnp.int32), params),
        mu=jax.tree.map(jnp.zeros_like, params),
        nu=jax.tree.map(jnp.zeros_like, params))

  def update(updates, state, params=None):
    del params
    count = jax.tree.map(optax.safe_int32_increment, state.count)
    mu = jax.tree.map(lambda g, m: b1 * m + (1 - b1) * g, updates, state.mu)
    nu = jax.tree.map(lambda g, v: b2 * v + (1 - b2) * jnp.square(g), updates, state.nu)

    def direction(m, v, c):
      c = c.astype(m.dtype)
      return (m / (1 - b1 ** c)) / (jnp.sqrt(v / (1 - b2 ** c)) + eps)

    return jax.tree.map(direction, mu, nu, count), PerLeafAdamState(count, mu, nu)

  return optax.GradientTransformation(init, update)


def _decay_mask(params: PyTree) -> PyTree:
  # Decay matrices only (kernels, embeddings); not biases, LayerNorm scales or positions' ... 1-D.
  return jax.tree.map(lambda p: p.ndim >= 2, params)


def adamw_direction(*, b1: float, b2: float, eps: float, weight_decay: float,
                    clip_norm: float) -> optax.GradientTransformation:
  """clip -> per-leaf Adam -> + weight_decay * p (2-D leaves). Multiply by -lr to apply."""
  parts = []
  if clip_norm > 0:
    parts.append(optax.clip_by_global_norm(clip_norm))
  parts.append(scale_by_adam_per_leaf(b1, b2, eps))
  if weight_decay > 0:
    parts.append(optax.add_decayed_weights(weight_decay, mask=_decay_mask))
  return optax.chain(*parts)


def path_key(path, rename: Mapping[str, str] | None = None) -> str:
  """'1/mu/block_0/c_fc/kernel' for a key path, with dict keys renamed by `rename`."""
  parts = []
  for k in path:
    if isinstance(k, jax.tree_util.DictKey):
      name = str(k.key)
      parts.append(rename.get(name, name) if rename else name)
    elif isinstance(k, jax.tree_util.SequenceKey):
      parts.append(str(k.idx))
    elif isinstance(k, jax.tree_util.GetAttrKey):
      parts.append(k.name)
    else:
      parts.append(str(k))
  return "/".join(parts)


def rebuild_opt_state(tx: optax.GradientTransformation, old_opt_state: PyTree,
                      new_params: PyTree, rename: Mapping[str, str]) -> PyTree:
  """Optimizer state for `new_params`, carried over from `old_opt_state` by parameter path.

  rename: old block name -> its name in the grown model (e.g. block_0 -> block_1 when a block is
  inserted below). Leaves whose renamed path exists in the old state are copied bit-exactly
  (moments and per-leaf counts); every other leaf (the new blocks) gets tx.init's fresh value:
  zero moments and count 0. Shared (non-parameter) leaves are matched by path too.
  """
  old = {path_key(p, rename): leaf
         for p, leaf in jax.tree_util.tree_leaves_with_path(old_opt_state)}
  template = tx.init(new_params)

  def pick(path, fresh):
    key = path_key(path)
    if key in old:
      prev = old[key]
      if prev.shape != fresh.shape or prev.dtype != fresh.dtype:
        raise ValueError(f"optimizer state {key}: old {prev.shape}/{prev.dtype} does not match "
                         f"new {fresh.shape}/{fresh.dtype}")
      return prev
    return fresh

  return jax.tree_util.tree_map_with_path(pick, template)


def keep_frozen(new_tree: PyTree, old_tree: PyTree, frozen: Iterable[str]) -> PyTree:
  """Leaves whose path passes through a dict key in `frozen` keep their old value.

  Used for post-growth isolated training: params and optimizer state (moments, counts) of the
  frozen blocks stay exactly as they were.
  """
  frozen = frozenset(frozen)
  if not frozen:
    return new_tree

  def sel(path, new, old):
    hit = any(isinstance(k, jax.tree_util.DictKey) and k.key in frozen for k in path)
    return old if hit else new

  return jax.tree_util.tree_map_with_path(sel, new_tree, old_tree)
