"""nanoGPT-style GPT in Flax Linen: learned positions, pre-norm blocks, tied embeddings.

Blocks are named `block_0 .. block_{depth-1}` (bottom to top) so that growth can insert,
duplicate and re-index them by name; `depth` is a static attribute, so every depth compiles
its own step and compute really scales with the active depth.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

PyTree = Any


@dataclasses.dataclass(frozen=True)
class GPTConfig:
  vocab_size: int = 256
  seq_len: int = 64        # context length (learned positions)
  d_model: int = 64
  n_heads: int = 4
  mlp_ratio: int = 4
  dropout: float = 0.0
  init_std: float = 0.02

  @classmethod
  def from_config(cls, model_cfg, vocab_size: int) -> "GPTConfig":
    return cls(vocab_size=vocab_size, seq_len=model_cfg.seq_len, d_model=model_cfg.d_model,
               n_heads=model_cfg.n_heads, mlp_ratio=model_cfg.mlp_ratio,
               dropout=model_cfg.dropout, init_std=model_cfg.init_std)


def block_name(i: int) -> str:
  return f"block_{i}"


def block_names(params: PyTree) -> list[str]:
  """Block names present in `params`, bottom to top."""
  names = [k for k in params if k.startswith("block_")]
  return sorted(names, key=lambda k: int(k.split("_")[1]))


def depth_of(params: PyTree) -> int:
  return len(block_names(params))


class Block(nn.Module):
  """Pre-LN block: x + attn(LN(x)); x + mlp(LN(x)). `c_proj` layers are the output projections."""
  cfg: GPTConfig

  @nn.compact
  def __call__(self, x: jax.Array, deterministic: bool = True) -> jax.Array:
    cfg = self.cfg
    b, t, d = x.shape
    hd = d // cfg.n_heads
    init = nn.initializers.normal(cfg.init_std)
    h = nn.LayerNorm(name="ln_1")(x)
    qkv = nn.Dense(3 * d, kernel_init=init, name="c_attn")(h)
    q, k, v = jnp.split(qkv.reshape(b, t, 3 * cfg.n_heads, hd), 3, axis=2)
    att = jnp.einsum("bqhd,bkhd->bhqk", q, k) / jnp.sqrt(hd).astype(x.dtype)
    mask = jnp.tril(jnp.ones((t, t), bool))
    att = jax.nn.softmax(jnp.where(mask, att, jnp.finfo(att.dtype).min), axis=-1)
    att = nn.Dropout(cfg.dropout)(att, deterministic=deterministic)
    y = jnp.einsum("bhqk,bkhd->bqhd", att, v).reshape(b, t, d)
    y = nn.Dense(d, kernel_init=init, name="attn_c_proj")(y)
    x = x + nn.Dropout(cfg.dropout)(y, deterministic=deterministic)
    h = nn.LayerNorm(name="ln_2")(x)
    h = nn.gelu(nn.Dense(cfg.mlp_ratio * d, kernel_init=init, name="c_fc")(h))
    h = nn.Dense(d, kernel_init=init, name="mlp_c_proj")(h)
    return x + nn.Dropout(cfg.dropout)(h, deterministic=deterministic)


class GPT(nn.Module):
  """tokens [batch, seq] int32 -> logits [batch, seq, vocab].

  block_mix: optional [depth] mask (MSG-style growth): block i computes
  x + block_mix[i] * (Block_i(x) - x), so a mask of 0 makes block i the identity and 1 the
  plain block. None (the default) is the plain model.
  """
  cfg: GPTConfig
  depth: int

  @nn.compact
  def __call__(self, tokens: jax.Array, deterministic: bool = True,
               block_mix: jax.Array | None = None) -> jax.Array:
    cfg = self.cfg
    init = nn.initializers.normal(cfg.init_std)
    wte = nn.Embed(cfg.vocab_size, cfg.d_model, embedding_init=init, name="wte")
    pos = self.param("wpe", init, (cfg.seq_len, cfg.d_model))
    x = wte(tokens) + pos[None, : tokens.shape[1]]
    x = nn.Dropout(cfg.dropout)(x, deterministic=deterministic)
    for i in range(self.depth):
      y = Block(cfg, name=block_name(i))(x, deterministic)
      x = y if block_mix is None else x + block_mix[i].astype(x.dtype) * (y - x)
    x = nn.LayerNorm(name="ln_f")(x)
    return wte.attend(x)  # tied output embedding


@functools.partial(jax.jit, static_argnums=(0, 1))
def init_params(cfg: GPTConfig, depth: int, rng: jax.Array) -> PyTree:
  tokens = jnp.zeros((1, cfg.seq_len), jnp.int32)
  return GPT(cfg, depth).init(rng, tokens)["params"]


@functools.partial(jax.jit, static_argnums=0)
def init_block(cfg: GPTConfig, rng: jax.Array) -> PyTree:
  """Fresh parameters of one block (the model's own initialiser)."""
  x = jnp.zeros((1, cfg.seq_len, cfg.d_model))
  return Block(cfg).init(rng, x)["params"]


def block_param_count(cfg: GPTConfig) -> int:
  d, f = cfg.d_model, cfg.mlp_ratio * cfg.d_model
  return (3 * d * d + 3 * d) + (d * d + d) + (d * f + f) + (f * d + d) + 4 * d


def train_flops_per_token(cfg: GPTConfig, depth: int) -> float:
  """Training FLOPs per token: 6 x (active block params + tied LM head) + attention scores.

  Kaplan et al. (2020): forward 2N + 2*n_layer*n_ctx*d per token, backward twice that. The
  embedding lookup is free but the tied output projection (d x V) is a real matmul.
  """
  n = depth * block_param_count(cfg) + cfg.d_model * cfg.vocab_size
  attn = 2 * depth * cfg.seq_len * cfg.d_model
  return 3.0 * (2.0 * n + attn)
