"""Headroom: on the committed experiment (nsm/figures/experiment.json, written by nsm.experiment at
the current default difficulty) no model reaches 100% on a task and every trivial baseline stays
<= 60%. Session 2's v2 tasks failed this (causal and kg at 100% for every model), and so did causal
at its session-3 default (hops 3: flat R-GCN 99.8 ± 0.5%, a strict xfail here until session 10
raised the default to hops 9 and reran causal).
"""
import json
import os

import numpy as np
import pytest

from nsm import domains

RESULTS = os.path.join(os.path.dirname(__file__), "..", "..", "nsm", "figures", "experiment.json")
TASKS = ("causal", "kg", "chains", "planning")


@pytest.fixture(scope="module")
def results():
  with open(RESULTS) as f:
    return json.load(f)


def task_hops(results, task):
  """The depth knob a task ran at: its own setup (session 10 on), else the run-wide one."""
  if "setup" in results[task]:
    return results[task]["setup"]["hops"]
  return results["setup"]["default_hops"][task]


@pytest.mark.parametrize("task", TASKS)
def test_experiment_ran_at_the_current_default_difficulty(results, task):
  assert task_hops(results, task) == domains.DEFAULT_HOPS[task], task
  for name in ("nsm", "flat_equal_depth", "flat_depth_k"):
    assert len(results[task]["models"][name]["test_accuracy"]) >= 5, (task, name)
  for seed_base in results[task]["trivial"]:
    assert max(seed_base.values()) <= 0.60, (task, seed_base)


@pytest.mark.parametrize("task", TASKS)
def test_no_model_saturates_at_default_difficulty(results, task):
  for name, r in results[task]["models"].items():
    assert np.mean(r["test_accuracy"]) < 0.995, (task, name, r["test_accuracy"])
    for k, acc in r.get("accuracy_by_hops", {}).items():
      assert np.mean(acc) < 0.995, (task, name, k)
