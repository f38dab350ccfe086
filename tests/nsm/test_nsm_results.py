"""Headroom: on the committed experiment (nsm/figures/experiment.json, written by nsm.experiment at
the current default difficulty) no model reaches 100% on a task and every trivial baseline stays
<= 60%. Session 2's v2 tasks failed this (causal and kg at 100% for every model).

causal is a strict xfail: at its default difficulty (hops 3) the flat R-GCNs still reach
99.8 ± 0.5% (5 seeds, nsm/README.md), so the headroom target is not met there; the xfail turns
into a failure (strict) as soon as a harder default makes it pass, so the marker cannot go stale.
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


def test_experiment_ran_at_the_current_default_difficulty(results):
  assert results["setup"]["default_hops"] == domains.DEFAULT_HOPS
  for task in TASKS:
    for name in ("nsm", "flat_equal_depth"):
      assert len(results[task]["models"][name]["test_accuracy"]) >= 5, (task, name)
    for seed_base in results[task]["trivial"]:
      assert max(seed_base.values()) <= 0.60, (task, seed_base)


@pytest.mark.parametrize("task", [
    pytest.param("causal", marks=pytest.mark.xfail(strict=True, reason="flat R-GCN 99.8% (measured)")),
    "kg", "chains", "planning"])
def test_no_model_saturates_at_default_difficulty(results, task):
  for name, r in results[task]["models"].items():
    assert np.mean(r["test_accuracy"]) < 0.995, (task, name, r["test_accuracy"])
    for k, acc in r.get("accuracy_by_hops", {}).items():
      assert np.mean(acc) < 0.995, (task, name, k)
