"""A tqdm progress bar for long loops: steps/s, ETA, headline metrics; log lines route through it.

The bar is drawn only on a terminal that reports a width (process 0). Elsewhere (batch queues,
`nohup`, CI, a 0-column pseudo-terminal) the loop's periodic log line carries the same
information: `step k/N (p%) | steps/s | ETA | metrics`.
"""
from __future__ import annotations

import logging as py_logging
import os
import sys
from typing import Any, Mapping

import jax
from absl import logging
from tqdm.auto import tqdm

MIN_COLUMNS = 20


def terminal_columns(stream=None) -> int:
  """Width of the terminal behind `stream` (default stderr); 0 when it is not a terminal."""
  stream = sys.stderr if stream is None else stream
  try:
    if not stream.isatty():
      return 0
    return os.get_terminal_size(stream.fileno()).columns
  except (AttributeError, OSError, ValueError):
    return 0


class _BarWriter:
  """A stream for log handlers: writes each line above the bar (tqdm.write) instead of over it."""

  def __init__(self, stream):
    self.stream = stream

  def write(self, text: str) -> None:
    for line in text.rstrip("\n").split("\n") if text.strip() else []:
      tqdm.write(line, file=self.stream)

  def flush(self) -> None:
    self.stream.flush()

  def isatty(self) -> bool:
    return True


def _console_handlers(stream):
  """absl's Python handler and the root logger's stream handlers that write to `stream`."""
  handlers = [logging.get_absl_handler().python_handler]
  handlers.extend(h for h in py_logging.getLogger().handlers
                  if isinstance(h, py_logging.StreamHandler) and h not in handlers)
  return [h for h in handlers if getattr(h, "stream", None) in (stream, sys.__stderr__)]


class Progress:

  def __init__(self, total: int, initial: int = 0, desc: str = "train", enabled: bool | None = None):
    if enabled is None:
      enabled = jax.process_index() == 0 and terminal_columns() >= MIN_COLUMNS
    self.enabled = enabled
    self._last = initial
    self._metrics: dict[str, str] = {}
    self._bar = tqdm(total=total, initial=initial, desc=desc, unit="step", dynamic_ncols=True,
                     disable=not enabled, smoothing=0.1, file=sys.stderr)
    self._redirected = []
    self._stderr = None
    if enabled:
      # Everything written to stderr while the bar is up (absl and Python log records, warnings)
      # goes above the bar. One writer object for both, so absl's "stream != sys.stderr" check
      # does not print a record twice.
      self._stderr = sys.stderr
      writer = _BarWriter(self._stderr)
      for handler in _console_handlers(self._stderr):
        self._redirected.append((handler, handler.stream))
        handler.stream = writer
      sys.stderr = writer

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()

  def note(self, text: str | None) -> None:
    """A transient status after the metrics (e.g. 'compiling the train step…'); None clears it."""
    postfix = dict(self._metrics)
    if text:
      postfix["status"] = text
    self._bar.set_postfix(postfix, refresh=True)

  def update(self, step: int, metrics: Mapping[str, Any] | None = None) -> None:
    """Moves the bar to `step` (completed steps) and shows `metrics` (the headline ones)."""
    if metrics:
      self._metrics = {k: f"{float(v):.4g}" for k, v in metrics.items()}
      self._bar.set_postfix(self._metrics, refresh=False)
    if step > self._last:
      self._bar.update(step - self._last)
      self._last = step

  def close(self) -> None:
    for handler, stream in self._redirected:
      handler.stream = stream
    self._redirected = []
    if self._stderr is not None:
      sys.stderr, self._stderr = self._stderr, None
    self._bar.close()
