"""Causal Transformer block: the baseline of the ResNet-BK comparison (same harness, embeddings)."""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp


class CausalSelfAttention(nn.Module):
  """x: [B, N, D] -> [B, N, D]; fused QKV projection, causal softmax attention."""
  num_heads: int
  dropout: float = 0.0
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    b, n, d = x.shape
    hd = d // self.num_heads
    qkv = nn.Dense(3 * d, name="qkv", dtype=self.dtype)(x)
    q, k, v = jnp.split(qkv.reshape(b, n, 3 * self.num_heads, hd), 3, axis=2)
    logits = jnp.einsum("bqhd,bkhd->bhqk", q, k).astype(jnp.float32) / jnp.sqrt(hd)
    mask = jnp.tril(jnp.ones((n, n), dtype=bool))
    logits = jnp.where(mask, logits, jnp.finfo(jnp.float32).min)
    att = jax.nn.softmax(logits, axis=-1).astype(self.dtype)
    att = nn.Dropout(self.dropout)(att, deterministic=not train)
    y = jnp.einsum("bhqk,bkhd->bqhd", att, v).reshape(b, n, d)
    return nn.Dense(d, name="out", dtype=self.dtype)(y)


class TransformerBlock(nn.Module):
  """Pre-norm block: x + Attn(LN x), then + MLP(LN x). Returns (x, {}) like the BK block."""
  num_heads: int
  mlp_dim: int
  dropout: float = 0.0
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> tuple[jax.Array, dict]:
    d = x.shape[-1]
    h = nn.LayerNorm(name="ln_attn")(x.astype(jnp.float32)).astype(self.dtype)
    x = x + CausalSelfAttention(self.num_heads, self.dropout, self.dtype, name="attn")(
        h, train=train)
    h = nn.LayerNorm(name="ln_mlp")(x.astype(jnp.float32)).astype(self.dtype)
    h = nn.gelu(nn.Dense(self.mlp_dim, name="mlp_in", dtype=self.dtype)(h))
    h = nn.Dropout(self.dropout)(h, deterministic=not train)
    x = x + nn.Dense(d, name="mlp_out", dtype=self.dtype)(h)
    return x, {}
