"""ResNet-BK language model (Flax Linen) and its Transformer baseline in one LM wrapper.

Token embedding + learned positions -> L pre-norm residual blocks -> LayerNorm -> vocabulary.
ResNet-BK block (reference bk.md §1.2, extended to H heads as §5 recommends):
  u   = LN(x)
  f   = MoE(u)                                      # sparse top-k experts, [B, N, D]
  v   = clamp(Linear(D -> H)(f), -v_max, v_max)     # one potential per head and position
  G_h = resolvent_diagonal(-2 + v_h, 1, 1, z_h)     # H = H0 + diag(v), H0 = discrete Laplacian
  x  += f + bk_scale * Linear(2H -> D)([Re G, Im G] * Im z)
With causal=True (default) G is the left-truncated resolvent gL_i, a function of positions <= i
only, so the network is a language model; causal=False is the original's full diagonal, which
lets position i see v_{i+1} (a function of its target token): an ablation, not an LM result.
The Im z factor rescales each head's features to the unit disc (|G| <= 1/Im z for real
symmetric H), so heads with small Im z (long memory) do not dominate.

mixer="lru" replaces only the BK layer by an LRU/S5-style diagonal linear recurrence (Orvieto et
al. 2023, "Resurrecting Recurrent Neural Networks for Long Sequences"), everything else equal:
  u   = gamma * (Linear(D -> 2P)(f) as P complex channels),  gamma_p = sqrt(1 - |lambda_p|^2)
  h_t = lambda * h_{t-1} + u_t                      # jax.lax.associative_scan over positions
  x  += f + lru_scale * Linear(2P -> D)([Re h, Im h])
with lambda_p = exp(-exp(nu_log_p) + i exp(theta_log_p)) (|lambda| < 1 for any parameters),
|lambda| initialised uniformly on the ring [r_min, r_max], phase in [0, max_phase].
"""
from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from bk import core
from bk import moe
from bk import regularizers
from bk import transformer

ARCHS = ("resnet_bk", "transformer")
MIXERS = ("bk", "lru")  # sequence mixer of the resnet_bk block
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


@dataclasses.dataclass(frozen=True)
class ModelConfig:
  """Narrow model config (fields as in configs/bk.py `model`, plus the vocabulary size)."""
  vocab_size: int
  arch: str = "resnet_bk"
  mixer: str = "bk"
  d_model: int = 64
  num_layers: int = 4
  max_len: int = 4096
  dropout: float = 0.1
  tie_embeddings: bool = False
  num_experts: int = 4
  top_k: int = 1
  router: str = "switch"
  expert_mult: int = 2
  num_heads: int = 1
  v_max: float = 3.0
  z_real: float = 0.0
  z_imag_max: float = 1.0
  z_imag_min: float = 0.1
  causal: bool = True
  bk_method: str = "scan"
  bk_gradient: str = "exact"
  grad_blend: float = 0.0
  bk_scale_init: float = 1.0
  lru_state_dim: int = 0
  lru_r_min: float = 0.9
  lru_r_max: float = 0.999
  lru_max_phase: float = 6.283
  attn_heads: int = 4
  transformer_mlp_dim: int = 256
  koopman_dim: int = 0
  physics: bool = False
  dtype: str = "float32"
  remat: bool = False

  @classmethod
  def from_config(cls, model_cfg, vocab_size: int, **overrides) -> "ModelConfig":
    names = {f.name for f in dataclasses.fields(cls)} - {"vocab_size"}
    kw = {k: model_cfg[k] for k in names if k in model_cfg and k != "transformer_match"}
    kw.update(overrides)
    return cls(vocab_size=int(vocab_size), **kw)


def head_shifts(cfg: ModelConfig) -> np.ndarray:
  """z_h for h = 0..H-1: Re z fixed, Im z geometric from z_imag_max down to z_imag_min."""
  h = cfg.num_heads
  t = np.arange(h) / max(h - 1, 1)
  imag = cfg.z_imag_max * (cfg.z_imag_min / cfg.z_imag_max) ** t if h > 1 else np.array(
      [cfg.z_imag_max])
  return (cfg.z_real + 1j * imag).astype(np.complex64)


class BKLayer(nn.Module):
  """f: [B, N, D] -> (bk features mapped to D: [B, N, D], stats)."""
  cfg: ModelConfig

  @nn.compact
  def __call__(self, f: jax.Array) -> tuple[jax.Array, dict]:
    cfg, dt = self.cfg, DTYPES[self.cfg.dtype]
    d = f.shape[-1]
    v = nn.Dense(cfg.num_heads, name="potential", dtype=dt)(f).astype(jnp.float32)
    v = jnp.clip(v, -cfg.v_max, cfg.v_max)  # [B, N, H]
    a = jnp.swapaxes(-2.0 + v, -1, -2)  # [B, H, N]: diagonal of H0 + diag(v)
    off = jnp.ones((a.shape[-1] - 1,), jnp.float32)  # H0 off-diagonals (broadcast)
    z = jnp.asarray(head_shifts(cfg))  # [H], broadcast against [B, H]
    method = None if cfg.bk_method == "auto" else cfg.bk_method  # auto: core.default_method()
    g = core.resolvent_diagonal(a, off, off, z, causal=cfg.causal, method=method,
                                gradient=cfg.bk_gradient, grad_blend=cfg.grad_blend)  # [B,H,N]
    g = g * jnp.asarray(z.imag, jnp.float32)[:, None]
    feats = jnp.concatenate([jnp.real(g), jnp.imag(g)], axis=1)  # [B, 2H, N]
    feats = jnp.swapaxes(feats, -1, -2).astype(dt)  # [B, N, 2H]
    out = nn.Dense(d, name="features", dtype=dt)(feats)
    bk_scale = self.param("bk_scale", nn.initializers.constant(cfg.bk_scale_init), (),
                          jnp.float32)
    self.sow("intermediates", "v", v)
    self.sow("intermediates", "G", g)
    stats = {"v_mean": jnp.mean(v), "v_std": jnp.std(v),
             "g_re_mean": jnp.mean(jnp.real(g)), "g_re_std": jnp.std(jnp.real(g)),
             "g_im_mean": jnp.mean(jnp.imag(g)), "g_im_std": jnp.std(jnp.imag(g)),
             "bk_scale": bk_scale}
    return bk_scale.astype(dt) * out, stats


def linear_recurrence(lam: jax.Array, u: jax.Array) -> jax.Array:
  """h_t = lam * h_{t-1} + u_t, h_{-1} = 0, along axis 1 by associative_scan.

  lam: complex [P] (or broadcastable to u), u: complex [B, N, P] -> h: [B, N, P].
  The elements (a, b) compose as (a2 a1, a2 b1 + b2); position t combines only t' <= t.
  """
  lam_t = jnp.broadcast_to(lam, u.shape)

  def combine(e1, e2):
    a1, b1 = e1
    a2, b2 = e2
    return a2 * a1, a2 * b1 + b2

  _, h = jax.lax.associative_scan(combine, (lam_t, u), axis=1)
  return h


def lru_state_dim(cfg: ModelConfig) -> int:
  """P: complex channels of the LRU mixer; 0 in the config = num_heads (BK's channel count)."""
  return cfg.lru_state_dim or cfg.num_heads


class LRULayer(nn.Module):
  """f: [B, N, D] -> (LRU features mapped to D: [B, N, D], stats); a drop-in for BKLayer."""
  cfg: ModelConfig

  @nn.compact
  def __call__(self, f: jax.Array) -> tuple[jax.Array, dict]:
    cfg, dt = self.cfg, DTYPES[self.cfg.dtype]
    d, p = f.shape[-1], lru_state_dim(cfg)

    def nu_init(key, shape, dtype=jnp.float32):  # |lambda|^2 uniform on [r_min^2, r_max^2]
      r2 = jax.random.uniform(key, shape, dtype, cfg.lru_r_min ** 2, cfg.lru_r_max ** 2)
      return jnp.log(-0.5 * jnp.log(r2))

    def theta_init(key, shape, dtype=jnp.float32):
      return jnp.log(cfg.lru_max_phase * jax.random.uniform(key, shape, dtype, 1e-3))

    nu_log = self.param("nu_log", nu_init, (p,), jnp.float32)
    theta_log = self.param("theta_log", theta_init, (p,), jnp.float32)
    lam = jnp.exp(-jnp.exp(nu_log) + 1j * jnp.exp(theta_log))  # [P] complex64, |lam| < 1
    gamma = jnp.sqrt(1.0 - jnp.abs(lam) ** 2)  # input normalisation (LRU's gamma)
    bu = nn.Dense(2 * p, name="input", dtype=dt)(f).astype(jnp.float32)  # [B, N, 2P]
    u = jax.lax.complex(bu[..., :p], bu[..., p:]) * gamma
    h = linear_recurrence(lam, u)  # [B, N, P]
    feats = jnp.concatenate([jnp.real(h), jnp.imag(h)], axis=-1).astype(dt)  # [B, N, 2P]
    out = nn.Dense(d, name="features", dtype=dt)(feats)
    scale = self.param("lru_scale", nn.initializers.constant(cfg.bk_scale_init), (),
                       jnp.float32)
    stats = {"lru_abs_lambda_mean": jnp.mean(jnp.abs(lam)), "lru_h_abs_mean": jnp.mean(jnp.abs(h)),
             "lru_scale": scale}
    return scale.astype(dt) * out, stats


class ResNetBKBlock(nn.Module):
  """x: [B, N, D] -> (x + MoE(LN x) + scale * Mixer(MoE(LN x)), stats); Mixer = BK or LRU."""
  cfg: ModelConfig

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> tuple[jax.Array, dict]:
    cfg, dt = self.cfg, DTYPES[self.cfg.dtype]
    u = nn.LayerNorm(name="ln")(x.astype(jnp.float32)).astype(dt)
    f, moe_stats = moe.SparseMoE(cfg.num_experts, cfg.top_k, cfg.expert_mult * cfg.d_model,
                                 cfg.router, cfg.dropout, dt, name="moe")(u, train=train)
    if cfg.mixer == "bk":
      mix_out, mix_stats = BKLayer(cfg, name="bk")(f)
    elif cfg.mixer == "lru":
      mix_out, mix_stats = LRULayer(cfg, name="lru")(f)
    else:
      raise ValueError(f"model.mixer={cfg.mixer!r} is invalid: allowed one of {MIXERS}")
    return x + (f + mix_out).astype(x.dtype), {**moe_stats, **mix_stats}


class LanguageModel(nn.Module):
  """tokens: int [B, N] -> (logits: float32 [B, N, V], aux: dict of scalars/vectors)."""
  cfg: ModelConfig

  @nn.compact
  def __call__(self, tokens: jax.Array, train: bool = False) -> tuple[jax.Array, dict]:
    cfg, dt = self.cfg, DTYPES[self.cfg.dtype]
    n = tokens.shape[-1]
    if n > cfg.max_len:
      raise ValueError(f"sequence length={n} is invalid: allowed <= model.max_len="
                       f"{cfg.max_len} (rows of the position table)")
    embed = nn.Embed(cfg.vocab_size, cfg.d_model, name="embed")
    pos = self.param("pos_embed", nn.initializers.normal(0.02), (cfg.max_len, cfg.d_model))
    x = embed(tokens) + pos[:n]
    x = nn.Dropout(cfg.dropout)(x, deterministic=not train)
    if cfg.arch == "resnet_bk":
      block_cls = ResNetBKBlock
      make = lambda i: block_cls(cfg, name=f"block{i}")
    elif cfg.arch == "transformer":
      block_cls = transformer.TransformerBlock
      make = lambda i: block_cls(cfg.attn_heads, cfg.transformer_mlp_dim, cfg.dropout, dt,
                                 name=f"block{i}")
    else:
      raise ValueError(f"model.arch={cfg.arch!r} is invalid: allowed one of {ARCHS}")
    if cfg.remat:
      # jax.checkpoint per block: activations inside a block are recomputed in the backward.
      block_cls = nn.remat(block_cls, static_argnums=(2,))
    layer_stats = []
    for i in range(cfg.num_layers):
      x, stats = make(i)(x, train)
      layer_stats.append(stats)
    h = x.astype(jnp.float32)
    aux = {}
    if cfg.koopman_dim > 0:
      aux["koopman_loss"] = regularizers.KoopmanHead(cfg.koopman_dim, name="koopman")(h)
    if cfg.physics:
      aux["physics_loss"] = regularizers.EnergyHead(cfg.d_model, name="energy")(h)
    h = nn.LayerNorm(name="ln_final")(h)
    if cfg.tie_embeddings:
      logits = embed.attend(h)
    else:
      logits = nn.Dense(cfg.vocab_size, name="head")(h)
    if layer_stats and layer_stats[0]:
      stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *layer_stats)  # leading axis = layer
      aux.update({k: v for k, v in stacked.items()})
    return logits.astype(jnp.float32), aux


def count_params(params) -> int:
  return int(sum(np.prod(p.shape) for p in jax.tree.leaves(params)))


def init_params(cfg: ModelConfig, rng: jax.Array, seq_len: int = 8):
  """Parameters of LanguageModel(cfg) for a [1, seq_len] input."""
  init = jax.jit(lambda r: LanguageModel(cfg).init(r, jnp.zeros((1, seq_len), jnp.int32)))
  return init(rng)["params"]


def param_counts(cfg: ModelConfig) -> dict:
  """{"total", "embedding", "non_embedding", "active_non_embedding"} parameter counts."""
  shapes = jax.eval_shape(lambda: init_params(cfg, jax.random.key(0)))
  total = count_params(shapes)
  emb = count_params({k: v for k, v in shapes.items() if k in ("embed", "pos_embed", "head")})
  inactive = 0
  if cfg.arch == "resnet_bk":
    per_expert = sum(np.prod(shapes["block0"]["moe"][k].shape[1:]) for k in ("w1", "b1", "w2",
                                                                             "b2"))
    inactive = int(cfg.num_layers * (cfg.num_experts - cfg.top_k) * per_expert)
  return {"total": total, "embedding": emb, "non_embedding": total - emb,
          "active_non_embedding": total - emb - inactive}


def matched_mlp_dim(bk_cfg: ModelConfig, match: str = "total") -> int:
  """Transformer MLP width whose non-embedding parameters equal ResNet-BK's (total or active)."""
  key = {"total": "non_embedding", "active": "active_non_embedding"}[match]
  target = param_counts(dataclasses.replace(bk_cfg, mixer="bk", koopman_dim=0,
                                            physics=False))[key]
  base = dataclasses.replace(bk_cfg, arch="transformer", koopman_dim=0, physics=False)
  p1 = param_counts(dataclasses.replace(base, transformer_mlp_dim=1))["non_embedding"]
  p2 = param_counts(dataclasses.replace(base, transformer_mlp_dim=2))["non_embedding"]
  return max(1, int(round(1 + (target - p1) / (p2 - p1))))
