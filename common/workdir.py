"""The run directory: writability checks, the configs a run was started with, superseded history.

Nothing here deletes a user's file: what a restart makes stale is moved to
`<workdir>/superseded/<UTC time>-resume-at-<step>/`.
"""
from __future__ import annotations

import glob
import json
import os
import re
import shutil
import time
from typing import Any, Mapping

from absl import logging

from common.config_validation import ConfigError

SUPERSEDED = "superseded"
# Files in results/ (and the workdir) that summarise a run's history or its end; on a restart from
# an earlier step they describe a trajectory the checkpoints no longer hold.
SUMMARY_PATTERNS = ("training_history.*", "dashboard.png", "final*.json")


class WorkdirError(ConfigError):
  """--workdir is unusable (a file, not writable); nothing was changed."""


def _probe_write(directory: str) -> None:
  """Raises PermissionError unless files can be created in `directory` (mode bits, read-only
  mounts); changes nothing, not even the directory's modification time."""
  if not os.access(directory, os.W_OK | os.X_OK):
    raise PermissionError(13, "Permission denied or read-only file system")


def check_writable(workdir: str) -> None:
  """Raises WorkdirError unless `workdir` is (or can be created as) a writable directory.

  Checked before anything is restored, so a read-only workdir fails in one line at start.
  """
  if os.path.exists(workdir) and not os.path.isdir(workdir):
    raise WorkdirError(f"--workdir={workdir} is a file: allowed a directory (new or existing)")
  try:
    os.makedirs(workdir, exist_ok=True)
  except OSError as e:
    raise WorkdirError(f"--workdir={workdir} cannot be created ({e.strerror}): allowed a "
                       "writable directory") from None
  for sub in ("", "checkpoints", "results"):
    path = os.path.join(workdir, sub)
    if sub and not os.path.isdir(path):
      continue
    try:
      _probe_write(path)
    except OSError as e:
      raise WorkdirError(f"--workdir={workdir} is not writable ({path}: {e.strerror}): allowed "
                         "a writable directory; nothing was restored or changed") from None


# ---------------------------------------------------------------------------------------- configs

def _flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
  out = {}
  for k, v in d.items():
    if isinstance(v, Mapping):
      out.update(_flatten(v, f"{prefix}{k}."))
    else:
      out[f"{prefix}{k}"] = v
  return out


def config_dict(config) -> dict:
  """A ConfigDict (or a plain mapping) as the JSON dict written to config.json."""
  if hasattr(config, "to_json_best_effort"):
    return json.loads(config.to_json_best_effort(sort_keys=True))
  return json.loads(json.dumps(dict(config), default=repr))


def config_differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
  """['optim.learning_rate: 0.003 → 0.001', ...] between two (nested) JSON config dicts."""
  a, b = _flatten(old), _flatten(new)
  missing = object()
  out = []
  for k in sorted(set(a) | set(b)):
    va, vb = a.get(k, missing), b.get(k, missing)
    if va != vb:
      fmt = lambda v: "(absent)" if v is missing else json.dumps(v)
      out.append(f"{k}: {fmt(va)} → {fmt(vb)}")
  return out


def saved_configs(workdir: str) -> list[str]:
  """config.json and config.<step>.json files, oldest first (by the order they were written)."""
  paths = [p for p in glob.glob(os.path.join(workdir, "config*.json"))
           if re.fullmatch(r"config(\.\d+(-\d+)?)?\.json", os.path.basename(p))]
  return sorted(paths, key=os.path.getmtime)


def latest_saved_config(workdir: str) -> tuple[str | None, dict | None]:
  paths = saved_configs(workdir)
  if not paths:
    return None, None
  with open(paths[-1]) as f:
    return paths[-1], json.load(f)


def _write_json_atomic(path: str, obj) -> None:
  with open(path + ".tmp", "w") as f:
    json.dump(obj, f, indent=2, sort_keys=True)
    f.write("\n")
  os.replace(path + ".tmp", path)


def record_config(workdir: str, config, step: int) -> list[str]:
  """Keeps every config the run was started with; returns the differences to the last one.

  The first start writes config.json. A resume at `step` with a config that differs from the last
  one recorded logs each differing field and writes config.<step>.json; config.json is never
  overwritten, so the record of what produced the early checkpoints stays.
  """
  new = config_dict(config)
  path, old = latest_saved_config(workdir)
  if old is None:
    _write_json_atomic(os.path.join(workdir, "config.json"), new)
    return []
  diffs = config_differences(old, new)
  if not diffs:
    return []
  target = os.path.join(workdir, f"config.{step}.json")
  n = 2
  while os.path.exists(target):
    target = os.path.join(workdir, f"config.{step}-{n}.json")
    n += 1
  _write_json_atomic(target, new)
  logging.warning("Config changed on resume at step %d (vs %s); this run's config is kept in %s:\n"
                  "  %s", step, os.path.basename(path), os.path.basename(target),
                  "\n  ".join(diffs))
  return diffs


# ---------------------------------------------------------------------------------------- history

def supersede(workdir: str, resume_step: int, reason: str) -> str:
  """Moves the run's history and summaries past `resume_step` aside; returns the folder.

  metrics.jsonl is moved; results/ is copied whole, then its summary files (training history,
  dashboard, final*.json) and the workdir's final*.json are moved out of the way, because they
  describe steps the checkpoints no longer hold. Nothing is deleted.
  """
  stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
  dest = os.path.join(workdir, SUPERSEDED, f"{stamp}-resume-at-{resume_step}")
  n = 2
  while os.path.exists(dest):
    dest = os.path.join(workdir, SUPERSEDED, f"{stamp}-resume-at-{resume_step}-{n}")
    n += 1
  os.makedirs(dest)
  metrics_path = os.path.join(workdir, "metrics.jsonl")
  if os.path.exists(metrics_path):
    os.replace(metrics_path, os.path.join(dest, "metrics.jsonl"))
  results = os.path.join(workdir, "results")
  if os.path.isdir(results):
    shutil.copytree(results, os.path.join(dest, "results"))
    for pattern in SUMMARY_PATTERNS:
      for p in glob.glob(os.path.join(results, pattern)):
        os.remove(p)  # a copy is in dest/results
  for p in glob.glob(os.path.join(workdir, "final*.json")):
    os.replace(p, os.path.join(dest, os.path.basename(p)))
  with open(os.path.join(dest, "README.txt"), "w") as f:
    f.write(f"Moved aside when the run restarted from step {resume_step}: {reason}\n")
  logging.warning("Restarting from step %d while the history went further (%s): the old "
                  "metrics.jsonl and results/ are kept in %s", resume_step, reason, dest)
  return dest
