"""Sparse mixture-of-experts FFN with a router that receives gradient, plus a balancing loss.

The original's top-1 `argmax` routing wrote the expert output without a gate factor, so its
router never received gradient (reference bk.md §1.4). Here the chosen expert's output is
multiplied by a differentiable gate:
* "switch": gate = softmax(router logits)[chosen expert] (Fedus et al. 2021, Switch Transformer);
* "gumbel": hard one-hot of argmax(logits + Gumbel noise) with the straight-through estimator
  (the original PoC's `F.gumbel_softmax(hard=True)`), deterministic argmax at evaluation.
The load-balancing loss is Switch's E * sum_e f_e * P_e (f_e: fraction of tokens whose first
choice is e, P_e: mean router probability of e); it equals 1 for perfectly uniform routing.

All experts are evaluated densely and combined with the (sparse) routing weights: with E = 4
small experts this is simpler and, on CPU, no slower than a capacity-based dispatch; its FLOPs are
E/top_k times those of the active path (reported in the benchmark).
"""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp


class SparseMoE(nn.Module):
  """x: [B, N, D] -> (y: [B, N, D], stats: dict of scalars and [E] usage)."""
  num_experts: int
  top_k: int
  hidden: int
  router: str = "switch"
  dropout: float = 0.0
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> tuple[jax.Array, dict]:
    e, d, f = self.num_experts, x.shape[-1], self.hidden
    logits = nn.Dense(e, name="router", dtype=jnp.float32)(x.astype(jnp.float32))
    probs = jax.nn.softmax(logits, axis=-1)  # [B, N, E]
    if self.router == "switch":
      top_p, top_i = jax.lax.top_k(probs, self.top_k)  # [B, N, k]
      if self.top_k > 1:  # renormalise the kept gates (Mixtral-style) so they sum to one.
        top_p = top_p / jnp.sum(top_p, axis=-1, keepdims=True)
      combine = jnp.sum(top_p[..., None] * jax.nn.one_hot(top_i, e), axis=-2)  # [B, N, E]
      first = top_i[..., 0]
    elif self.router == "gumbel":
      if train:
        g = jax.random.gumbel(self.make_rng("gumbel"), logits.shape, jnp.float32)
        soft = jax.nn.softmax(logits + g, axis=-1)
      else:
        soft = probs
      first = jnp.argmax(soft, axis=-1)
      hard = jax.nn.one_hot(first, e)
      combine = hard + soft - jax.lax.stop_gradient(soft)  # straight-through estimator
    else:
      raise ValueError(f"router={self.router!r} is invalid: allowed 'switch' or 'gumbel'")

    init = nn.initializers.lecun_normal(batch_axis=(0,))
    w1 = self.param("w1", init, (e, d, f), jnp.float32)
    b1 = self.param("b1", nn.initializers.zeros, (e, f), jnp.float32)
    w2 = self.param("w2", init, (e, f, d), jnp.float32)
    b2 = self.param("b2", nn.initializers.zeros, (e, d), jnp.float32)
    xc = x.astype(self.dtype)
    h = jnp.einsum("bnd,edf->bnef", xc, w1.astype(self.dtype)) + b1.astype(self.dtype)
    h = nn.Dropout(self.dropout)(nn.relu(h), deterministic=not train)
    y = jnp.einsum("bnef,efd->bned", h, w2.astype(self.dtype)) + b2.astype(self.dtype)
    out = jnp.einsum("bne,bned->bnd", combine.astype(self.dtype), y)

    usage = jnp.mean(jax.nn.one_hot(first, e), axis=(0, 1))  # f_e
    mean_prob = jnp.mean(probs, axis=(0, 1))  # P_e
    entropy = -jnp.mean(jnp.sum(probs * jnp.log(probs + 1e-9), axis=-1))
    stats = {"load_balance": e * jnp.sum(usage * mean_prob), "usage": usage,
             "routing_entropy": entropy}
    self.sow("intermediates", "expert_choice", first)
    return out, stats
