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
  config.data.hops = 3  # the difficulty this test was calibrated on (the default was 3 until session 10)
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


def test_experiment_seeds_share_one_padding_budget():
  """nsm.experiment vmaps seeds over stacked batches: every seed needs the same padded shapes.
  (Session 10 found that each seed's budget counted its own graphs twice, so np.stack failed.)"""
  from nsm import experiment
  args = experiment.argparse.Namespace(hidden=16, rgcn_layers=1, batch_size=8, lr=3e-3, num_graphs=40)
  c = experiment.experiment_config(args)
  td = experiment.build_task("causal", c, [0, 1, 2], test_per_k=4)
  assert len({(b.budget.n_node, b.budget.n_edge, b.budget.n_graph) for b in td.batches}) == 1
  for step in (0, 3):
    g = experiment.stack([b.train_batch(step) for b in td.batches])
    assert g.nodes.shape == (3, td.batches[0].budget.n_node, c.data.feature_dim)
  # The budget holds the largest batch of any seed's graphs (and chain length-generalisation sets).
  every = [g for b, hs in zip(td.batches, td.hop_sets)
           for g in list(b.dataset.graphs) + [x for d in hs.values() for x in d.graphs]]
  largest = sorted((int(g.n_node[0]) for g in every), reverse=True)[:8]
  assert td.batches[0].budget.n_node == sum(largest) + 1
