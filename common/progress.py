"""A tqdm progress bar for long loops: steps/s, ETA, latest metrics; quiet off-TTY and on hosts > 0."""
from __future__ import annotations

import sys
from typing import Any, Mapping

import jax
from tqdm.auto import tqdm


class Progress:

  def __init__(self, total: int, initial: int = 0, desc: str = "train", enabled: bool | None = None):
    if enabled is None:
      enabled = sys.stderr.isatty() and jax.process_index() == 0
    self._last = initial
    self._bar = tqdm(total=total, initial=initial, desc=desc, unit="step", dynamic_ncols=True,
                     disable=not enabled, smoothing=0.1)

  def update(self, step: int, metrics: Mapping[str, Any] | None = None) -> None:
    """Moves the bar to `step` (the number of completed steps) and shows the latest metrics."""
    if step > self._last:
      self._bar.update(step - self._last)
      self._last = step
    if metrics:
      self._bar.set_postfix({k: f"{float(v):.4g}" for k, v in list(metrics.items())[:4]},
                            refresh=False)

  def close(self) -> None:
    self._bar.close()
