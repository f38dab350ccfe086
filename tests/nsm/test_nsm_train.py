"""End-to-end: train_and_evaluate on causal v2 beats the majority class; a second call resumes."""
import json
import os

import numpy as np
import pytest

from common.config_validation import ConfigError
from configs import nsm as nsm_config
from nsm import train


def tiny_config(**overrides):
  config = nsm_config.get_config("tiny")
  config.domain = "causal"
  config.data.num_graphs = 400
  config.optim.learning_rate = 3e-3
  for key, value in overrides.items():
    node = config
    *path, last = key.split(".")
    for p in path:
      node = node[p]
    node[last] = value
  return config


@pytest.mark.slow
def test_train_evaluate_beats_majority_and_resumes(tmp_path):
  workdir = str(tmp_path / "run")
  first = train.train_and_evaluate(tiny_config(**{"train.epochs": 12, "train.baselines": False}), workdir)
  spe = 280 // 32
  assert first["num_steps"] == 12 * spe
  res = train.train_and_evaluate(tiny_config(**{"train.epochs": 24, "train.flat_epochs": 8}), workdir)
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    steps = [json.loads(line)["step"] for line in f]
  assert steps == sorted(steps) and steps[-1] == 24 * spe  # continued from step 96, no restart
  assert max(int(s) for s in os.listdir(os.path.join(workdir, "checkpoints"))) == 24 * spe
  with open(os.path.join(workdir, "final_results.json")) as f:
    saved = json.load(f)
  assert saved["test_accuracy"] == res["test_accuracy"]
  for key in ("balanced_accuracy", "per_class_accuracy", "confusion_matrix", "num_params"):
    assert key in saved
  assert set(saved["baselines"]) == {"majority", "size_only", "edge_types", "flat_rgcn"}
  assert np.sum(saved["confusion_matrix"]) == 60
  assert res["test_accuracy"] >= res["baselines"]["majority"] + 0.10, res
  for name in ("dashboard.png", "confusion_matrix.png", "training_history.json"):
    assert os.path.exists(os.path.join(workdir, "results", name))


@pytest.mark.parametrize("key,value,match", [
    ("domain", "chess", r"config.domain='chess' is invalid"),
    ("model.pool_ratio", 1.5, r"config.model.pool_ratio=1.5 is invalid: allowed a number in \(0.0, 1.0\]"),
    ("model.pool_ratio", 0.0, r"config.model.pool_ratio=0.0 is invalid"),
    ("data.mode", "v3", r"config.data.mode='v3' is invalid"),
])
def test_bad_config_is_one_clear_error(tmp_path, key, value, match):
  with pytest.raises(ConfigError, match=match):
    train.train_and_evaluate(tiny_config(**{key: value}), str(tmp_path))
