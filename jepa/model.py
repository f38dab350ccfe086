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


def gelu_erf(x: jax.Array) -> jax.Array:
  """Exact GELU as x/2 (1 + erf(x/sqrt 2)) (PyTorch's formula); XLA's f32 erf is a cheap rational
  polynomial, while `nn.gelu(approximate=False)` goes through the costlier erfc."""
  return 0.5 * x * (1.0 + jax.lax.erf(x * np.float32(1.0 / np.sqrt(2.0))))


def _attend_fwd_impl(q, k, v, key_valid):
  scale = np.float32(1.0 / np.sqrt(q.shape[-1]))
  logits = jnp.einsum("bhqd,bhkd->bhqk", q, k).astype(jnp.float32) * scale
  if key_valid is not None:
    logits = jnp.where(key_valid[:, None, None, :], logits, _NEG)
  p = jax.nn.softmax(logits, axis=-1)
  return jnp.einsum("bhqk,bhkd->bhqd", p.astype(v.dtype), v), p


@jax.custom_vjp
def attend(q, k, v, key_valid):
  """softmax(q k^T / sqrt(d), masked to valid keys) v on [B, H, N, d]."""
  return _attend_fwd_impl(q, k, v, key_valid)[0]


def _attend_fwd(q, k, v, key_valid):
  out, p = _attend_fwd_impl(q, k, v, key_valid)
  return out, (q, k, v, p, key_valid)


def _attend_bwd(res, dy):
  # The transposed products p^T dy and ds^T q take explicitly materialised [B, H, k, q] operands
  # (the optimization barrier stops XLA from folding the transpose back into the dot), so every
  # backward dot is a plain batched [rows, K] x [K, cols] product for XLA:CPU's batched-dot
  # kernels; autodiff's strided contractions (contracting a non-minor dimension of both operands)
  # fell back to a slower kernel. fwd+bwd of a [512, 4, 33, 16] masked attention on the 2-core
  # CPU, same run: autodiff 25.9 ms, this 21.7 ms (PyTorch 13.7 ms).
  q, k, v, p, key_valid = res
  scale = np.float32(1.0 / np.sqrt(q.shape[-1]))
  pt = jax.lax.optimization_barrier(jnp.swapaxes(p, -1, -2).astype(v.dtype))
  dv = jnp.einsum("bhkq,bhqd->bhkd", pt, dy)
  dp = jnp.einsum("bhqd,bhkd->bhqk", dy, v).astype(jnp.float32)
  ds = p * (dp - jnp.sum(dp * p, axis=-1, keepdims=True)) * scale
  dq = jnp.einsum("bhqk,bhkd->bhqd", ds.astype(k.dtype), k)
  dst = jax.lax.optimization_barrier(jnp.swapaxes(ds, -1, -2).astype(q.dtype))
  dk = jnp.einsum("bhkq,bhqd->bhkd", dst, q)
  return dq, dk, dv, None


attend.defvjp(_attend_fwd, _attend_bwd)


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
    y = attend(qkv[0], qkv[1], qkv[2], key_valid).transpose(0, 2, 1, 3).reshape(b, n, d)
    x = x + flat_apply(dense(d, "proj", res_init), y)
    y = nn.LayerNorm(1e-6, dtype=self.dtype, name="norm2")(x)
    y = gelu_erf(flat_apply(dense(int(d * self.mlp_ratio), "fc1"), y))
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
