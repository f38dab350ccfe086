"""PNG grid of images with their context and target masks."""
from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

_TARGET_COLOURS = np.array([[1.0, 0.2, 0.2], [0.2, 0.5, 1.0], [1.0, 0.8, 0.1], [0.8, 0.3, 1.0],
                            [1.0, 0.5, 0.0], [0.0, 0.9, 0.9]])


def mask_overlay(image: np.ndarray, patch: int, ctx_idx, ctx_valid, tgt_idx, tgt_valid) -> np.ndarray:
  """RGB [H, W, 3] in [0, 1]: grey image, context patches tinted green, target blocks in colours."""
  img = image.astype(np.float64)
  img = (img - img.min()) / max(img.max() - img.min(), 1e-9)
  rgb = np.repeat(img.mean(-1, keepdims=True), 3, -1) if img.shape[-1] != 3 else img
  out = 0.35 * rgb
  cols = image.shape[1] // patch

  def paint(idx, colour, alpha):
    r, c = divmod(int(idx), cols)
    sl = (slice(r * patch, (r + 1) * patch), slice(c * patch, (c + 1) * patch))
    out[sl] = (1 - alpha) * rgb[sl] + alpha * np.asarray(colour)

  for i in np.asarray(ctx_idx)[np.asarray(ctx_valid)]:
    paint(i, (0.1, 0.9, 0.1), 0.35)
  for j, (idx, valid) in enumerate(zip(np.asarray(tgt_idx), np.asarray(tgt_valid))):
    for i in idx[valid]:
      paint(i, _TARGET_COLOURS[j % len(_TARGET_COLOURS)], 0.55)
  return out


def save_mask_grid(path: str, images: np.ndarray, patch: int, masks) -> str:
  """images [B, H, W, C]; masks = (ctx_idx, ctx_valid, tgt_idx, tgt_valid) for the batch."""
  ctx_idx, ctx_valid, tgt_idx, tgt_valid = (np.asarray(m) for m in masks)
  n = len(images)
  fig, axes = plt.subplots(2, n, figsize=(1.6 * n, 3.4))
  axes = np.asarray(axes).reshape(2, n)
  for b in range(n):
    img = images[b].astype(np.float64)
    axes[0, b].imshow(img[..., 0] if img.shape[-1] == 1 else img / 255.0, cmap="gray")
    axes[1, b].imshow(mask_overlay(images[b], patch, ctx_idx[b], ctx_valid[b], tgt_idx[b], tgt_valid[b]))
    for a in axes[:, b]:
      a.set_xticks([])
      a.set_yticks([])
  axes[1, 0].set_ylabel("context (green)\n+ targets", fontsize=7)
  fig.suptitle("I-JEPA multi-block masks", fontsize=9)
  fig.tight_layout()
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  tmp = path + ".tmp.png"
  fig.savefig(tmp, dpi=110)
  plt.close(fig)
  os.replace(tmp, path)
  return path


def read_png(path: str) -> np.ndarray:
  """A PNG as uint8 [H, W, 3] (for TensorBoard's image tab)."""
  img = plt.imread(path)
  if img.dtype != np.uint8:
    img = np.clip(np.round(img * 255.0), 0, 255).astype(np.uint8)
  return img[..., :3]
