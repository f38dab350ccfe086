"""Headroom: on the committed experiment (nsm/figures/experiment.json, written by nsm.experiment at
the current default difficulty) no model reaches 99% on a task and every trivial baseline stays
<= 60%. Session 2's v2 tasks failed this (causal and kg at 100% for every model), and so did causal
at its session-3 default (hops 3: flat R-GCN 99.8 ± 0.5%) and at hops 9 (session 10, 1500 steps:
flat 99.7 / 100%, nsm/figures/experiment_causal_hops9.json).

At the session-10 default (hops 12) NSM (70.7%) and the flat R-GCN of NSM's depth (97.0 ± 1.7%)
are below 99%; the flat R-GCN at depth k = 15 is not (99.5 ± 0.9%): a strict xfail, so the
marker fails as soon as a harder default passes.

kg (session 12, default hops 3, 6000 steps x 8000 graphs) is all or nothing per flat seed (100% or
chance): the < 99% check reads the seed mean, so it passes for such a mixture although single seeds
are at 100% (README); hops 5 was not learned at this budget (pilots), so no harder kg default exists yet.
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


MAIN_MODELS = ("nsm", "flat_equal_depth", "flat_depth_k")
# Measured saturation (strict xfails: they fail as soon as a harder default passes).
SATURATED = {("causal", "flat_depth_k"): "flat R-GCN depth 15: 99.5% (session 10)",
             ("chains", "flat_equal_depth"): "flat R-GCN depth 6 at k = 1: 99.4% (session 11, "
                                             "6000 steps x 8000 graphs)",
             ("planning", "flat_equal_depth"): "flat R-GCN depth 6: 99.9% (session 13, 2000 steps x "
                                               "8000 graphs)",
             ("planning", "flat_depth_k"): "flat R-GCN depth 4: 100.0% (session 13, 2000 steps x "
                                           "8000 graphs)"}


@pytest.mark.parametrize("task,name", [
    pytest.param(t, m, marks=pytest.mark.xfail(strict=True, reason=SATURATED[(t, m)]))
    if (t, m) in SATURATED else (t, m) for t in TASKS for m in MAIN_MODELS])
def test_no_model_saturates_at_default_difficulty(results, task, name):
  r = results[task]["models"][name]
  assert np.mean(r["test_accuracy"]) < 0.99, (task, name, r["test_accuracy"])
  for k, acc in r.get("accuracy_by_hops", {}).items():
    assert np.mean(acc) < 0.99, (task, name, k)


def test_causal_headroom_rows_ran_to_a_plateau(results):
  """The causal rows of session 10 are plateau numbers: over the last quarter of training the
  seed-mean validation accuracy moved by < 2 points, and the headroom of the equal-depth flat
  R-GCN is outside its 95% CI (its best seed is < 99%)."""
  for name in MAIN_MODELS:
    curve = np.array([np.mean(c["val_accuracy"]) for c in results["causal"]["models"][name]["curve"]])
    tail = curve[-max(2, len(curve) // 4):]
    assert tail.max() - tail.min() < 0.02, (name, curve)
  assert max(results["causal"]["models"]["flat_equal_depth"]["test_accuracy"]) < 0.99


def test_report_load_columns_come_from_the_main_run(results):
  """causal's setup.loadavg ends with its cycle sweep's load (1.66); the table must show the main
  run's end (3.64), recorded in setup.loadavg_main (until session 13 the table read loadavg[-1])."""
  from nsm import report
  rows = [r for r in report.tables(results).splitlines() if r.startswith("| causal | 12 |")]
  assert len(rows) == 1 and rows[0].endswith("| 2.63, 3.64 |"), rows
