"""One metric writer: metrics.jsonl + TensorBoard (tensorboardX) + optional Weights & Biases."""
from __future__ import annotations

import json
import math
import os
from typing import Any, Mapping

import jax
import numpy as np
from absl import logging


def _to_float(v: Any) -> float:
  return float(np.asarray(v))


def _json_value(v: float):
  # JSON has no NaN/Inf; keep them visible as strings rather than dropping them.
  return v if math.isfinite(v) else repr(v)


class MetricWriter:
  """Writes scalar records; process 0 only. Records are {"step": int, name: float, ...}."""

  def __init__(self, workdir: str, *, config=None, resume_step: int = 0, tensorboard: bool = True,
               wandb: bool = False, wandb_project: str = "k7-research"):
    self.workdir = workdir
    self.active = jax.process_index() == 0
    self.path = os.path.join(workdir, "metrics.jsonl")
    self._records: list[dict] = []
    self._tb = None
    self._wandb = None
    if not self.active:
      return
    os.makedirs(workdir, exist_ok=True)
    if os.path.exists(self.path):
      with open(self.path) as f:
        old = [json.loads(line) for line in f if line.strip()]
      # A resumed run recomputes the steps after its checkpoint: drop their stale records.
      self._records = [r for r in old if r["step"] <= resume_step]
      if len(self._records) != len(old):
        self._rewrite()
    if config is not None:
      with open(os.path.join(workdir, "config.json"), "w") as f:
        f.write(config.to_json_best_effort(indent=2, sort_keys=True) + "\n")
    if tensorboard:
      from tensorboardX import SummaryWriter
      self._tb = SummaryWriter(os.path.join(workdir, "tb"),
                               purge_step=resume_step + 1 if resume_step else None)
    if wandb:
      try:
        import wandb as wandb_lib
      except ImportError:
        logging.warning("wandb logging is enabled but wandb is not installed "
                        "(pip install -e '.[wandb]'); continuing without it")
      else:
        self._wandb = wandb_lib.init(project=wandb_project, dir=workdir, resume="allow",
                                     config=config.to_dict() if config is not None else None)

  def _rewrite(self) -> None:
    with open(self.path + ".tmp", "w") as f:
      for r in self._records:
        f.write(json.dumps(r) + "\n")
    os.replace(self.path + ".tmp", self.path)

  def write_scalars(self, step: int, scalars: Mapping[str, Any]) -> None:
    if not self.active or not scalars:
      return
    values = {k: _to_float(v) for k, v in scalars.items()}
    record = {"step": int(step), **{k: _json_value(v) for k, v in values.items()}}
    self._records.append(record)
    with open(self.path, "a") as f:
      f.write(json.dumps(record) + "\n")
    if self._tb is not None:
      for k, v in values.items():
        self._tb.add_scalar(k, v, int(step))
      self._tb.flush()
    if self._wandb is not None:
      self._wandb.log(values, step=int(step))

  def write_image(self, step: int, name: str, image: np.ndarray) -> None:
    """One uint8 [H, W, C] image to TensorBoard (and W&B); not part of metrics.jsonl."""
    if not self.active:
      return
    if self._tb is not None:
      self._tb.add_image(name, np.asarray(image), int(step), dataformats="HWC")
      self._tb.flush()
    if self._wandb is not None:
      import wandb as wandb_lib
      self._wandb.log({name: wandb_lib.Image(np.asarray(image))}, step=int(step))

  def write_histograms(self, step: int, values: Mapping[str, Any]) -> None:
    """Histograms of arrays (e.g. features) to TensorBoard (and W&B); not part of metrics.jsonl."""
    if not self.active:
      return
    if self._tb is not None:
      for k, v in values.items():
        self._tb.add_histogram(k, np.asarray(v, np.float64).ravel(), int(step))
      self._tb.flush()
    if self._wandb is not None:
      import wandb as wandb_lib
      self._wandb.log({k: wandb_lib.Histogram(np.asarray(v).ravel()) for k, v in values.items()},
                      step=int(step))

  @property
  def records(self) -> list[dict]:
    return list(self._records)

  def history(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """name → (steps, values) over all records that carry that name."""
    out: dict[str, tuple[list, list]] = {}
    for r in self._records:
      for k, v in r.items():
        if k == "step":
          continue
        steps, vals = out.setdefault(k, ([], []))
        steps.append(r["step"])
        vals.append(float(v))
    return {k: (np.asarray(s, np.int64), np.asarray(v, np.float64)) for k, (s, v) in out.items()}

  def export_history(self, out_dir: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Writes training_history.json ({name: {"steps": [...], "values": [...]}}) and .npz."""
    hist = self.history()
    if not self.active:
      return hist
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "training_history.json"), "w") as f:
      json.dump({k: {"steps": s.tolist(), "values": [_json_value(x) for x in v.tolist()]}
                 for k, (s, v) in hist.items()}, f, indent=1)
    arrays = {}
    for k, (s, v) in hist.items():
      safe = k.replace("/", "__")
      arrays[f"{safe}__steps"] = s
      arrays[f"{safe}__values"] = v
    np.savez(os.path.join(out_dir, "training_history.npz"), **arrays)
    return hist

  def close(self) -> None:
    if self._tb is not None:
      self._tb.close()
      self._tb = None
    if self._wandb is not None:
      self._wandb.finish()
      self._wandb = None
