"""Interpretability figures (the original's notebook 04, as PNGs written at every eval).

* `gii_v_step<k>.png`: per layer, Re G_ii and Im G_ii (each head, features scaled by Im z) and
  the potentials v_i along one validation sequence.
* `routing_step<k>.png`: per layer, the expert-usage histogram over that sequence and the chosen
  expert at each position.
"""
from __future__ import annotations

import functools
import os

import jax
import jax.numpy as jnp
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


@functools.partial(jax.jit, static_argnums=0)
def _intermediates(model, params, x):
  return model.apply({"params": params}, x, False, mutable=["intermediates"])[1]["intermediates"]


def layer_intermediates(model, params, tokens: np.ndarray) -> list[dict]:
  """Per layer {"G": [H, N] complex, "v": [N, H], "expert": [N]} for one sequence tokens [N]."""
  inter = jax.device_get(_intermediates(model, params, jnp.asarray(tokens, jnp.int32)[None]))
  out = []
  for i in range(model.cfg.num_layers):
    blk = inter.get(f"block{i}", {})
    if "bk" not in blk:
      continue
    out.append({"G": np.asarray(blk["bk"]["G"][0][0]), "v": np.asarray(blk["bk"]["v"][0][0]),
                "expert": np.asarray(blk["moe"]["expert_choice"][0][0])})
  return out


def write_figures(model, params, tokens: np.ndarray, out_dir: str, step: int) -> list[str]:
  """Writes the two PNGs for the first len(tokens) - 1 tokens; returns their paths."""
  n = min(len(tokens) - 1, model.cfg.max_len)
  layers = layer_intermediates(model, params, np.asarray(tokens[:n]))
  if not layers:
    return []
  os.makedirs(out_dir, exist_ok=True)
  L = len(layers)
  pos = np.arange(n)
  fig, axes = plt.subplots(L, 3, figsize=(15, 2.6 * L), squeeze=False)
  for i, lay in enumerate(layers):
    for h in range(lay["G"].shape[0]):
      axes[i, 0].plot(pos, lay["G"][h].real, lw=0.8, label=f"head {h}")
      axes[i, 1].plot(pos, lay["G"][h].imag, lw=0.8, label=f"head {h}")
      axes[i, 2].plot(pos, lay["v"][:, h], lw=0.8, label=f"head {h}")
    for j, name in enumerate(("Re G_ii · Im z", "Im G_ii · Im z", "potential v_i")):
      axes[i, j].set_title(f"layer {i}: {name}", fontsize=9)
      axes[i, j].grid(alpha=0.3)
  axes[0, 0].legend(fontsize=6)
  axes[-1, 1].set_xlabel("position in a validation sequence")
  fig.suptitle(f"BK-Core features and potentials, step {step}")
  fig.tight_layout()
  p1 = os.path.join(out_dir, f"gii_v_step{step}.png")
  fig.savefig(p1, dpi=90)
  plt.close(fig)

  num_experts = model.cfg.num_experts
  fig, axes = plt.subplots(L, 2, figsize=(12, 2.4 * L), squeeze=False)
  for i, lay in enumerate(layers):
    counts = np.bincount(lay["expert"], minlength=num_experts)
    axes[i, 0].bar(np.arange(num_experts), counts / max(n, 1))
    axes[i, 0].set_title(f"layer {i}: expert usage", fontsize=9)
    axes[i, 0].set_xticks(np.arange(num_experts))
    axes[i, 1].scatter(pos, lay["expert"], s=4)
    axes[i, 1].set_title(f"layer {i}: chosen expert per position", fontsize=9)
    axes[i, 1].set_yticks(np.arange(num_experts))
  fig.suptitle(f"Expert routing on a validation sequence, step {step}")
  fig.tight_layout()
  p2 = os.path.join(out_dir, f"routing_step{step}.png")
  fig.savefig(p2, dpi=90)
  plt.close(fig)
  return [p1, p2]
