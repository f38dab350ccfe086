"""End to end through the controller: held-out test split, isolated training, the MSG ramp."""
import jax
import numpy as np
import pytest

from configs import growth as growth_config
from growth import controller
from growth import data as data_lib
from growth import experiment
from growth import model as model_lib


@pytest.fixture(scope="module")
def tiny_data():
  cfg = growth_config.get_config("tiny")
  data = data_lib.load(cfg.data)
  return data, data_lib.eval_sets(data, cfg.data, cfg.model.seq_len)


def _cfg(**growth):
  cfg = growth_config.get_config("tiny")
  cfg.train.plot = False
  for k, v in growth.items():
    cfg.growth[k] = v
  return cfg


@pytest.mark.slow
def test_trigger_reads_validation_only_and_reports_test(tiny_data, monkeypatch):
  data, evals = tiny_data
  # A trigger that fires as soon as it is eligible (thresholds 0), reading the validation loss.
  cfg = _cfg(strategy="copy", trigger="geometry", tau_crit=0.0, kappa_crit=0.0, threshold=1e9,
             max_depth=2)
  cfg.train.target_depth, cfg.train.budget_steps = 2, 30
  seen = []
  orig = controller.stagnation.update

  def spy(state, c, **kw):
    seen.append(kw["val_loss"])
    return orig(state, c, **kw)

  monkeypatch.setattr(controller.stagnation, "update", spy)
  a = experiment.run_one(cfg, data, evals, seed=0)
  assert a["events"], "the trigger should have fired"
  assert seen == a["curve"]["val_loss"]            # the detector saw exactly the valid losses
  assert a["final_test_loss"] == a["curve"]["test_loss"][-1]
  assert all(abs(t - v) > 1e-6 for t, v in zip(a["curve"]["test_loss"], a["curve"]["val_loss"]))
  # A different test split changes every reported loss but no decision.
  rng = np.random.default_rng(0)
  other = [(rng.integers(0, 256, x.shape).astype(np.int32),
            rng.integers(0, 256, y.shape).astype(np.int32)) for x, y in evals.test]
  b = experiment.run_one(cfg, data, data_lib.EvalSets(evals.valid, other), seed=0)
  assert [e["step"] for e in b["events"]] == [e["step"] for e in a["events"]]
  assert b["curve"]["val_loss"] == a["curve"]["val_loss"]
  assert b["final_test_loss"] > a["final_test_loss"] + 0.5


def _drive(run, state, batch_fn, evals, until, on_step=None):
  step = 0
  while step < until:
    end = min(run.next_boundary(step), until)
    fn = run.train_step(step)
    for s in range(step, end):
      state, _ = fn(state, batch_fn(s))
      state = run.collect(s + 1, state)
      if on_step:
        on_step(s + 1, state)
    step = end
    state, _, _ = run.boundary(step, state, evals)
    if on_step:
      on_step(step, state)  # after a growth: the grown state at this step
  return state


def test_isolated_training_keeps_old_blocks_bit_identical(tiny_data):
  data, evals = tiny_data
  cfg = _cfg(strategy="copy", trigger="schedule", schedule_steps=(20,), max_depth=2,
             isolated_steps=6)
  cfg.train.target_depth = 2
  run = controller.GrowthRun(cfg, data.vocab_size)
  state = run.initial_state(jax.random.key(0))
  batch_fn = data_lib.batch_fn(data.train, cfg.data.batch_size, cfg.model.seq_len, 0)
  snaps = {}

  def on_step(s, st):
    if "block_1" in st.params:
      snaps[s] = jax.device_get({k: st.params[k] for k in ("block_0", "block_1", "wte")})

  _drive(run, state, batch_fn, evals, 30, on_step)
  assert run.events[0]["step"] == 20 and run.events[0]["new_blocks"] == ["block_0"]
  old, new = "block_1", "block_0"  # the old block moved up; the new one sits below it
  leaves = lambda s, k: jax.tree.leaves(snaps[s][k])
  for s in range(21, 27):  # isolated steps 20..25: the old block is frozen bit-exactly
    for a, b in zip(leaves(20, old), leaves(s, old)):
      np.testing.assert_array_equal(a, b)
  assert max(np.abs(a - b).max() for a, b in zip(leaves(20, new), leaves(26, new))) > 0
  assert np.abs(snaps[26]["wte"]["embedding"] - snaps[20]["wte"]["embedding"]).max() > 0
  # ... and trains again once the phase is over
  assert max(np.abs(a - b).max() for a, b in zip(leaves(26, old), leaves(28, old))) > 0


def test_msg_ramp_runs_end_to_end_without_a_spike(tiny_data):
  data, evals = tiny_data
  cfg = _cfg(strategy="msg", trigger="schedule")
  r = experiment.run_one(cfg, data, evals, seed=0)
  assert [e["step"] for e in r["events"]] == [20, 30] and r["final_depth"] == 3
  for sp in r["spikes"]:  # mask 0 at insertion: the test loss does not move
    assert abs(sp["after"] - sp["before"]) < 1e-5
  assert r["budget"] <= r["flops"] < r["budget"] * 1.05
  run = controller.GrowthRun(cfg, data.vocab_size)
  run.events = [{"step": 30, "depth_after": 3, "new_blocks": ["block_0"]}]
  run.depth, run.ramp_until = 3, 36
  assert run.ramped(33) == (0,) and run.ramped(36) == ()
  assert run.next_boundary(30) == 36  # the ramp ends at a segment boundary
