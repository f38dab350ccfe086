"""End to end: train_and_evaluate grows on schedule, resumes after a growth event bit-exactly."""
import json
import math
import os
import shutil

import pytest

from common.config_validation import ConfigError
from configs import growth as growth_config
from growth import controller
from growth import train


def _tiny():
  c = growth_config.get_config("tiny")
  c.growth.trigger = "schedule"
  c.growth.strategy = "geometric"
  c.train.keep_checkpoints = 10
  c.train.plot = False
  return c


@pytest.mark.slow
def test_train_grows_and_resumes_after_growth(tmp_path):
  cfg = _tiny()
  workdir = str(tmp_path / "run")
  final = train.train_and_evaluate(cfg, workdir)
  assert [e["step"] for e in final["events"]] == [20, 30]
  assert final["depth"] == 3 and final["status"] == "done"
  # Budget: spent exactly (within one step), integrated over the depth history.
  assert final["budget_flops"] <= final["flops_used"] < final["budget_flops"] * 1.05
  # Learned: far below the uniform byte model (log 256 = 5.55 nats).
  assert final["val_loss"] < math.log(256) - 1.0
  assert final["test_loss"] < math.log(256) - 1.0 and final["test_loss"] != final["val_loss"]
  assert os.path.exists(os.path.join(workdir, "results", "dashboard.png"))
  records = [json.loads(l) for l in open(os.path.join(workdir, "metrics.jsonl"))]
  assert any(r.get("growth/depth") == 2.0 and r["step"] == 20 for r in records)
  assert all(math.isfinite(r["stagnation/tau"]) for r in records if "stagnation/tau" in r)
  # Keep only the checkpoint written right after the first growth (depth 2) and resume.
  ckpt = os.path.join(workdir, "checkpoints")
  steps = sorted(int(d) for d in os.listdir(ckpt) if d.isdigit())
  assert 20 in steps
  for s in steps:
    if s > 20:
      shutil.rmtree(os.path.join(ckpt, str(s)))
  resumed = train.train_and_evaluate(cfg, workdir)
  assert resumed["events"][0] == final["events"][0]             # restored from meta
  assert [e["step"] for e in resumed["events"]] == [20, 30]
  assert resumed["depth"] == 3
  assert resumed["val_loss"] == pytest.approx(final["val_loss"], abs=1e-6)
  assert resumed["test_loss"] == pytest.approx(final["test_loss"], abs=1e-6)


@pytest.mark.parametrize("field,value,match", [
    ("geometry.k_subspace", 5, "config.geometry.k_subspace=5"),
    ("growth.strategy", "magic", "config.growth.strategy='magic'"),
    ("growth.patience", -1, "config.growth.patience=-1"),
    ("growth.schedule_steps", (30, 20), "config.growth.schedule_steps"),
])
def test_bad_config_gives_clear_error(field, value, match):
  cfg = growth_config.get_config("tiny")
  section, key = field.split(".")
  cfg[section][key] = value
  with pytest.raises(ConfigError, match=match.replace("(", r"\(").replace(")", r"\)")):
    controller.validate(cfg)


@pytest.mark.slow
def test_experiment_run_spends_budget_and_zero_growth_has_no_spike():
  from growth import data as data_lib
  from growth import experiment
  base, settings = experiment.variant_config("smoke")
  cfg = experiment.apply_overrides(base, experiment.RUNS["zero"], 3, settings["small_depth"])
  data = data_lib.load(cfg.data)
  r = experiment.run_one(cfg, data, data_lib.eval_sets(data, cfg.data, cfg.model.seq_len),
                         seed=0)
  assert [e["step"] for e in r["events"]] == [20, 30] and r["final_depth"] == 3
  assert r["budget"] <= r["flops"] < r["budget"] * 1.05
  assert len(r["spikes"]) == 2
  for sp in r["spikes"]:  # function-preserving insertion: the loss does not move
    assert abs(sp["after"] - sp["before"]) < 1e-5
  assert r["curve"]["flops"] == sorted(r["curve"]["flops"])
