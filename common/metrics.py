"""One metric writer: metrics.jsonl + TensorBoard (tensorboardX) + optional Weights & Biases."""
from __future__ import annotations

import csv
import json
import math
import os
from typing import Any, Mapping

import jax
import numpy as np
from absl import logging

from common import workdir as workdir_lib


def _to_float(v: Any) -> float:
  return float(np.asarray(v))


def _json_value(v: float):
  # JSON has no NaN/Inf; keep them visible as strings rather than dropping them.
  return v if math.isfinite(v) else repr(v)


class MetricWriter:
  """Writes scalar records; process 0 only. Records are {"step": int, name: float, ...}."""

  def __init__(self, workdir: str, *, config=None, resume_step: int = 0, tensorboard: bool = True,
               wandb: bool | None = None, wandb_project: str | None = None):
    """`wandb`: None follows config.wandb.enabled when the config has a `wandb` block."""
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
      old, damaged = [], 0
      with open(self.path) as f:
        for line in f:
          if line.strip():
            try:
              old.append(json.loads(line))
            except json.JSONDecodeError:  # a line cut by kill -9 mid-write
              damaged += 1
      # The run continues from its checkpoint at resume_step: records past it describe steps the
      # checkpoints no longer hold. They are moved aside with the old file, never deleted.
      self._records = [r for r in old if r["step"] <= resume_step]
      if len(self._records) != len(old) or damaged:
        workdir_lib.supersede(workdir, resume_step, f"{len(old) - len(self._records)} metric "
                              f"records after step {resume_step}"
                              + (f", {damaged} unreadable lines" if damaged else ""))
        self._rewrite()
        self.export_history(os.path.join(workdir, "results"))
    if config is not None:
      workdir_lib.record_config(workdir, config, resume_step)
    if tensorboard:
      from tensorboardX import SummaryWriter
      self._tb = SummaryWriter(os.path.join(workdir, "tb"),
                               purge_step=resume_step + 1 if resume_step else None)
    wb = config.get("wandb") if config is not None and hasattr(config, "get") else None
    if wandb is None:
      wandb = bool(wb and wb.enabled)
    if wandb:
      try:
        import wandb as wandb_lib
      except ImportError:
        logging.warning("wandb logging is enabled but wandb is not installed "
                        "(pip install -e '.[wandb]'); continuing without it")
      else:
        # One W&B run per workdir: a resumed job continues it.
        id_path = os.path.join(workdir, "wandb_run_id.txt")
        run_id = open(id_path).read().strip() if os.path.exists(id_path) else wandb_lib.util.generate_id()
        with open(id_path, "w") as f:
          f.write(run_id + "\n")
        self._wandb = wandb_lib.init(
            project=wandb_project or (wb.project if wb else None) or "k7-research",
            entity=(wb.entity or None) if wb else None,
            name=(wb.name if wb and wb.name else os.path.basename(os.path.abspath(workdir))),
            dir=workdir, id=run_id, resume="allow",
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
    """Writes training_history.json ({name: {"steps": [...], "values": [...]}}), .npz and .csv.

    The CSV has one row per step and one column per metric (empty where not recorded).
    """
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
    names = sorted(hist)
    rows: dict[int, dict[str, float]] = {}
    for r in self._records:
      rows.setdefault(r["step"], {}).update({k: v for k, v in r.items() if k != "step"})
    tmp = os.path.join(out_dir, "training_history.csv.tmp")
    with open(tmp, "w", newline="") as f:
      out = csv.writer(f)
      out.writerow(["step", *names])
      for step in sorted(rows):
        out.writerow([step, *[rows[step].get(k, "") for k in names]])
    os.replace(tmp, os.path.join(out_dir, "training_history.csv"))
    return hist

  def close(self) -> None:
    if self._tb is not None:
      self._tb.close()
      self._tb = None
    if self._wandb is not None:
      self._wandb.finish()
      self._wandb = None
