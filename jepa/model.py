"""ViT encoder and narrow ViT predictor of I-JEPA / H-JEPA (Flax Linen)."""
from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
_NEG = -1e9  # finite key-mask bias: an all-masked row gives uniform weights, never NaN


@dataclasses.dataclass(frozen=True)
class ViTConfig:
  """Narrow model config (built from `config.model` by `vit_config`)."""
  image_size: int
  channels: int
  patch_size: int = 4
  width: int = 64
  depth: int = 4
  num_heads: int = 4
  mlp_ratio: float = 4.0
  predictor_width: int = 64
  predictor_depth: int = 2
  predictor_heads: int = 4
  dtype: str = "float32"

  @property
  def grid(self) -> tuple[int, int]:
    g = self.image_size // self.patch_size
    return g, g


def vit_config(model_cfg: Any, image_size: int, channels: int) -> ViTConfig:
  """Validates `config.model` and returns a ViTConfig."""
  if model_cfg.patch_size < 1 or image_size % model_cfg.patch_size:
    raise ValueError(f"config.model.patch_size={model_cfg.patch_size!r} is invalid: allowed a divisor of "
                     f"data.image_size={image_size}")
  for name, heads in (("width", "num_heads"), ("predictor_width", "predictor_heads")):
    if model_cfg[name] % model_cfg[heads]:
      raise ValueError(f"config.model.{name}={model_cfg[name]!r} is invalid: allowed a multiple of "
                       f"model.{heads}={model_cfg[heads]}")
  if model_cfg.dtype not in _DTYPES:
    raise ValueError(f"config.model.dtype={model_cfg.dtype!r} is invalid: allowed {sorted(_DTYPES)}")
  return ViTConfig(image_size=image_size, channels=channels, **model_cfg.to_dict())


def sincos_pos_embed_2d(dim: int, grid_hw: tuple[int, int]) -> np.ndarray:
  """Fixed 2-D sin-cos position embedding [rows * cols, dim] (MAE / I-JEPA layout)."""
  if dim % 4:
    raise ValueError(f"embedding width {dim} is invalid: allowed a multiple of 4 (2-D sin-cos)")
  rows, cols = grid_hw
  omega = 1.0 / 10000 ** (np.arange(dim // 4, dtype=np.float64) / (dim / 4.0))

  def embed_1d(pos):
    out = np.einsum("m,d->md", pos.reshape(-1), omega)
    return np.concatenate([np.sin(out), np.cos(out)], axis=1)

  gy, gx = np.meshgrid(np.arange(rows, dtype=np.float64), np.arange(cols, dtype=np.float64), indexing="ij")
  return np.concatenate([embed_1d(gy), embed_1d(gx)], axis=1).astype(np.float32)


def patchify(images: jax.Array, patch: int) -> jax.Array:
  """[B, H, W, C] -> [B, (H/p)(W/p), p*p*C] row-major patches."""
  b, h, w, c = images.shape
  x = images.reshape(b, h // patch, patch, w // patch, patch, c)
  return x.transpose(0, 1, 3, 2, 4, 5).reshape(b, (h // patch) * (w // patch), patch * patch * c)


def gather_tokens(x: jax.Array, idx: jax.Array) -> jax.Array:
  """x [B, N, D], idx [B, K] -> [B, K, D]."""
  return jnp.take_along_axis(x, idx[..., None], axis=1)


_init = nn.initializers.truncated_normal(0.02)


def flat_apply(layer, x: jax.Array) -> jax.Array:
  """Applies a Dense-like layer to [..., D] as one [prod(...), D] matmul.

  Same parameters and values; on XLA:CPU the kernel gradient of a Dense over [B, N, D] (a
  dot_general contracting two batch-like dimensions) was ~2x slower than the plain 2-D x^T dy.
  """
  lead = x.shape[:-1]
  y = layer(x.reshape(-1, x.shape[-1]))
  return y.reshape(*lead, y.shape[-1])


class Block(nn.Module):
  """Pre-norm transformer block. `layer_id` rescales the residual projections (I-JEPA init)."""
  width: int
  num_heads: int
  mlp_ratio: float
  layer_id: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, key_valid=None):
    d, h = self.width, self.num_heads
    res_init = nn.initializers.truncated_normal(0.02 / np.sqrt(2.0 * self.layer_id))
    dense = lambda n, name, init=_init: nn.Dense(n, kernel_init=init, dtype=self.dtype, name=name)
    y = nn.LayerNorm(1e-6, dtype=self.dtype, name="norm1")(x)
    b, n = x.shape[:2]
    # [B, N, 3, H, d] -> [3, B, H, N, d] once: the attention dots then need no per-dot transposes.
    qkv = flat_apply(dense(3 * d, "qkv"), y).reshape(b, n, 3, h, d // h).transpose(2, 0, 3, 1, 4)
    q, k, v = qkv[0], qkv[1], qkv[2]
    logits = jnp.einsum("bhqd,bhkd->bhqk", q, k) / np.sqrt(d // h).astype(np.float32)
    if key_valid is not None:
      logits = jnp.where(key_valid[:, None, None, :], logits, _NEG)
    attn = jax.nn.softmax(logits.astype(jnp.float32), axis=-1).astype(v.dtype)
    y = jnp.einsum("bhqk,bhkd->bhqd", attn, v).transpose(0, 2, 1, 3).reshape(b, n, d)
    x = x + flat_apply(dense(d, "proj", res_init), y)
    y = nn.LayerNorm(1e-6, dtype=self.dtype, name="norm2")(x)
    y = nn.gelu(flat_apply(dense(int(d * self.mlp_ratio), "fc1"), y), approximate=False)
    return x + flat_apply(dense(d, "fc2", res_init), y)


class Encoder(nn.Module):
  """ViT encoder without CLS; runs on the tokens at `idx` only when given (token dropping)."""
  cfg: ViTConfig

  @nn.compact
  def __call__(self, images, idx=None, valid=None, return_layers=False):
    """images [B, H, W, C]; idx/valid [B, K]. Returns tokens [B, K or N, D] (final LayerNorm),
    and with `return_layers` also the list of every block's output (pre-norm)."""
    cfg, dtype = self.cfg, _DTYPES[self.cfg.dtype]
    x = flat_apply(nn.Dense(cfg.width, kernel_init=_init, dtype=dtype, name="patch_embed"),
                   patchify(images, cfg.patch_size).astype(dtype))
    x = x + jnp.asarray(sincos_pos_embed_2d(cfg.width, cfg.grid), dtype)
    if idx is not None:
      x = gather_tokens(x, idx)
    layers = []
    for i in range(cfg.depth):
      x = Block(cfg.width, cfg.num_heads, cfg.mlp_ratio, i + 1, dtype, name=f"block_{i}")(x, valid)
      layers.append(x)
    out = nn.LayerNorm(1e-6, dtype=dtype, name="norm")(x)
    return (out, layers) if return_layers else out


class Predictor(nn.Module):
  """Narrow ViT over context tokens plus mask tokens at the target positions, one sequence per block.

  `num_heads_out` > 1 adds extra linear heads (predictor side only) for intermediate-layer levels.
  """
  cfg: ViTConfig
  num_heads_out: int = 1

  @nn.compact
  def __call__(self, ctx_tokens, ctx_idx, ctx_valid, tgt_idx, tgt_valid):
    """ctx_tokens [B, Kc, D], ctx_idx/valid [B, Kc], tgt_idx/valid [B, M, Kt] -> [L, B, M, Kt, D]."""
    cfg, dtype = self.cfg, _DTYPES[self.cfg.dtype]
    b, m, kt = tgt_idx.shape
    pos = jnp.asarray(sincos_pos_embed_2d(cfg.predictor_width, cfg.grid), dtype)
    x = flat_apply(nn.Dense(cfg.predictor_width, kernel_init=_init, dtype=dtype, name="embed"), ctx_tokens)
    x = x + pos[ctx_idx]
    mask_token = self.param("mask_token", _init, (cfg.predictor_width,))
    tgt = mask_token.astype(dtype) + pos[tgt_idx]  # [B, M, Kt, P]
    # Each target block is its own sequence: the context is repeated M times.
    x = jnp.broadcast_to(x[:, None], (b, m) + x.shape[1:])
    seq = jnp.concatenate([x, tgt], axis=2).reshape(b * m, -1, cfg.predictor_width)
    valid = jnp.concatenate([jnp.broadcast_to(ctx_valid[:, None], (b, m, ctx_valid.shape[-1])), tgt_valid],
                            axis=2).reshape(b * m, -1)
    for i in range(cfg.predictor_depth):
      seq = Block(cfg.predictor_width, cfg.predictor_heads, cfg.mlp_ratio, i + 1, dtype,
                  name=f"block_{i}")(seq, valid)
    seq = nn.LayerNorm(1e-6, dtype=dtype, name="norm")(seq)[:, -kt:]
    outs = [flat_apply(nn.Dense(cfg.width, kernel_init=_init, dtype=dtype, name=f"proj_{l}" if l else "proj"), seq)
            for l in range(self.num_heads_out)]
    return jnp.stack(outs).reshape(self.num_heads_out, b, m, kt, cfg.width).astype(jnp.float32)


class JEPA(nn.Module):
  """Context encoder + predictor (the trainable half); the target encoder is an EMA of `encoder`."""
  cfg: ViTConfig
  num_heads_out: int = 1

  def setup(self):
    self.encoder = Encoder(self.cfg)
    self.predictor = Predictor(self.cfg, self.num_heads_out)

  def __call__(self, images, ctx_idx, ctx_valid, tgt_idx, tgt_valid):
    ctx = self.encoder(images, ctx_idx, ctx_valid)
    return self.predictor(ctx, ctx_idx, ctx_valid, tgt_idx, tgt_valid)

  def encode(self, images, return_layers=False):
    return self.encoder(images, return_layers=return_layers)
