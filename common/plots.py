"""A dashboard PNG from the metric history: one panel per metric group."""
from __future__ import annotations

import math
import os
from typing import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def default_groups(names: Sequence[str]) -> dict[str, list[str]]:
  """Groups metric names by the part after the split prefix ("train/loss", "val/loss" → "loss")."""
  groups: dict[str, list[str]] = {}
  for name in sorted(names):
    key = name.split("/", 1)[1] if "/" in name else name
    groups.setdefault(key, []).append(name)
  return groups


def dashboard(history: Mapping[str, tuple[np.ndarray, np.ndarray]], path: str, *,
              groups: Mapping[str, Sequence[str]] | None = None,
              events: Sequence[tuple[int, str]] = (), title: str | None = None,
              log_scale: Sequence[str] = ()) -> str | None:
  """Draws one panel per group (title → metric names) and writes a PNG atomically.

  events: (step, label) pairs drawn as vertical lines on every panel (growth, phase changes).
  log_scale: panel titles drawn with a log y-axis (only when all values are > 0).
  Returns the path, or None when the history is empty.
  """
  if not history:
    return None
  groups = dict(groups) if groups is not None else default_groups(list(history))
  groups = {t: [n for n in ns if n in history] for t, ns in groups.items()}
  groups = {t: ns for t, ns in groups.items() if ns}
  if not groups:
    return None
  n = len(groups)
  cols = min(3, n)
  rows = math.ceil(n / cols)
  fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3.2 * rows), squeeze=False)
  for ax, (panel, names) in zip(axes.flat, groups.items()):
    positive = True
    for name in names:
      steps, values = history[name]
      ax.plot(steps, values, label=name, marker="." if len(steps) < 30 else None)
      positive = positive and bool(np.all(np.asarray(values) > 0))
    for step, label in events:
      ax.axvline(step, color="0.6", lw=0.8, ls="--")
    if panel in log_scale and positive:
      ax.set_yscale("log")
    ax.set_title(panel)
    ax.set_xlabel("step")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
  for ax in list(axes.flat)[n:]:
    ax.axis("off")
  if title:
    fig.suptitle(title)
  fig.tight_layout()
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  tmp = path + ".tmp.png"
  fig.savefig(tmp, dpi=90)
  plt.close(fig)
  os.replace(tmp, path)
  return path
