"""PyTorch reference of the I-JEPA train step for `python -m jepa.bench` (the `[bench]` extra).

Written from the I-JEPA paper (Assran et al. 2023) and the project's notes, not copied from the
CC BY-NC official code: ViT without CLS, fixed 2-D sin-cos positions, context encoder on the
context tokens only, narrow predictor with mask tokens (one sequence per target block),
smooth-L1 on layer-normed target-encoder outputs, AdamW, EMA after the optimizer step.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from jepa import model as model_lib


class Block(nn.Module):

  def __init__(self, dim, heads, mlp_ratio, layer_id, sdpa):
    super().__init__()
    self.heads, self.sdpa = heads, sdpa
    self.norm1, self.norm2 = nn.LayerNorm(dim, eps=1e-6), nn.LayerNorm(dim, eps=1e-6)
    self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
    hidden = int(dim * mlp_ratio)
    self.fc1, self.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)
    for lin in (self.qkv, self.proj, self.fc1, self.fc2):
      nn.init.trunc_normal_(lin.weight, std=0.02)
      nn.init.zeros_(lin.bias)
    with torch.no_grad():
      self.proj.weight.div_(math.sqrt(2.0 * layer_id))
      self.fc2.weight.div_(math.sqrt(2.0 * layer_id))

  def forward(self, x):
    b, n, d = x.shape
    q, k, v = self.qkv(self.norm1(x)).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
    if self.sdpa:
      y = F.scaled_dot_product_attention(q, k, v)
    else:  # as in the I-JEPA code: explicit softmax(q k^T / sqrt(d)) v
      y = ((q @ k.transpose(-2, -1)) * (d // self.heads) ** -0.5).softmax(-1) @ v
    x = x + self.proj(y.transpose(1, 2).reshape(b, n, d))
    return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))


def _gather(x, idx):
  return torch.gather(x, 1, idx.unsqueeze(-1).expand(-1, -1, x.shape[-1]))


class Encoder(nn.Module):

  def __init__(self, cfg: model_lib.ViTConfig, sdpa: bool):
    super().__init__()
    self.patch = nn.Conv2d(cfg.channels, cfg.width, cfg.patch_size, cfg.patch_size)
    self.register_buffer("pos", torch.from_numpy(model_lib.sincos_pos_embed_2d(cfg.width, cfg.grid))[None])
    self.blocks = nn.ModuleList(Block(cfg.width, cfg.num_heads, cfg.mlp_ratio, i + 1, sdpa)
                                for i in range(cfg.depth))
    self.norm = nn.LayerNorm(cfg.width, eps=1e-6)

  def forward(self, images, idx=None):
    x = self.patch(images).flatten(2).transpose(1, 2) + self.pos
    if idx is not None:
      x = _gather(x, idx)
    for blk in self.blocks:
      x = blk(x)
    return self.norm(x)


class Predictor(nn.Module):

  def __init__(self, cfg: model_lib.ViTConfig, sdpa: bool):
    super().__init__()
    p = cfg.predictor_width
    self.embed, self.out = nn.Linear(cfg.width, p), nn.Linear(p, cfg.width)
    self.mask_token = nn.Parameter(torch.zeros(1, 1, p))
    nn.init.trunc_normal_(self.mask_token, std=0.02)
    self.register_buffer("pos", torch.from_numpy(model_lib.sincos_pos_embed_2d(p, cfg.grid))[None])
    self.blocks = nn.ModuleList(Block(p, cfg.predictor_heads, cfg.mlp_ratio, i + 1, sdpa)
                                for i in range(cfg.predictor_depth))
    self.norm = nn.LayerNorm(p, eps=1e-6)

  def forward(self, ctx, ctx_idx, tgt_idx):
    """ctx [B, Kc, D], ctx_idx [B, Kc], tgt_idx [B, M, Kt] -> [B*M, Kt, D]."""
    b, m, kt = tgt_idx.shape
    pos = self.pos.expand(b, -1, -1)
    x = self.embed(ctx) + _gather(pos, ctx_idx)
    x = x.repeat_interleave(m, dim=0)  # one sequence per target block
    t = self.mask_token + _gather(pos, tgt_idx.reshape(b, m * kt)).reshape(b * m, kt, -1)
    x = torch.cat([x, t], dim=1)
    for blk in self.blocks:
      x = blk(x)
    return self.out(self.norm(x)[:, -kt:])


class IJEPAStep:
  """One optimizer step of I-JEPA in PyTorch (fp32; CPU or CUDA)."""

  def __init__(self, cfg: model_lib.ViTConfig, *, lr=1e-3, weight_decay=0.04, ema=0.996, sdpa=False, seed=0,
               device="cpu"):
    torch.manual_seed(seed)
    self.encoder, self.predictor = Encoder(cfg, sdpa).to(device), Predictor(cfg, sdpa).to(device)
    self.target = Encoder(cfg, sdpa).to(device)
    self.target.load_state_dict(self.encoder.state_dict())
    for p in self.target.parameters():
      p.requires_grad_(False)
    params = list(self.encoder.parameters()) + list(self.predictor.parameters())
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    self.opt = torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                                  {"params": no_decay, "weight_decay": 0.0}], lr=lr)
    self.ema = ema

  def __call__(self, images, ctx_idx, tgt_idx) -> float:
    b, m, kt = tgt_idx.shape
    with torch.no_grad():
      h = F.layer_norm(self.target(images), (self.target.norm.normalized_shape[0],))
      h = _gather(h, tgt_idx.reshape(b, m * kt)).reshape(b * m, kt, -1)
    z = self.predictor(self.encoder(images, ctx_idx), ctx_idx, tgt_idx)
    loss = F.smooth_l1_loss(z, h)
    self.opt.zero_grad(set_to_none=True)
    loss.backward()
    self.opt.step()
    with torch.no_grad():  # EMA after the optimizer step
      tp, op = list(self.target.parameters()), list(self.encoder.parameters())
      torch._foreach_mul_(tp, self.ema)
      torch._foreach_add_(tp, op, alpha=1.0 - self.ema)
    return loss.item()  # .item() synchronises a CUDA device, so the step is timed whole


def to_torch_inputs(images_u8: np.ndarray, ctx_idx: np.ndarray, tgt_idx: np.ndarray, mean, std, device="cpu"):
  x = (images_u8.astype(np.float32) / 255.0 - mean) / std
  x = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
  return tuple(t.to(device) for t in (x, torch.from_numpy(ctx_idx.astype(np.int64)),
                                      torch.from_numpy(tgt_idx.astype(np.int64))))
