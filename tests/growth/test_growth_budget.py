"""FLOP budget integration over the depth history, and the experiment's statistics."""
import math

import numpy as np
import pytest

from configs import growth as growth_config
from growth import controller
from growth import model as model_lib
from growth import report


def test_flops_integrate_over_depth_history_and_set_total_steps():
  cfg = growth_config.get_config("tiny")
  run = controller.GrowthRun(cfg, vocab_size=256)
  f = {d: run.flops_per_step(d) for d in (1, 2, 3)}
  mc = model_lib.GPTConfig.from_config(cfg.model, 256)
  tokens = cfg.data.batch_size * cfg.model.seq_len
  d, v, t = mc.d_model, 256, mc.seq_len
  per_block = 12 * d * d + 13 * d  # attn 4d^2+4d, mlp 8d^2+5d, two LayerNorms 4d
  assert model_lib.block_param_count(mc) == per_block
  assert f[2] == pytest.approx(tokens * 6 * (2 * per_block + d * v + 2 * t * d))
  assert run.budget == pytest.approx(f[3] * cfg.train.budget_steps)
  assert run.total_steps() == math.ceil(run.budget / f[1])
  run.events = [{"step": 20, "depth_after": 2}, {"step": 30, "depth_after": 3}]
  run.depth = 3
  assert run.flops_at(25) == pytest.approx(20 * f[1] + 5 * f[2])
  spent = 20 * f[1] + 10 * f[2]
  assert run.total_steps() == 30 + math.ceil((run.budget - spent) / f[3])
  assert run.flops_at(run.total_steps()) >= run.budget > run.flops_at(run.total_steps() - 1)


def test_first_crossing_and_ci95():
  x, y = [0, 10, 20, 30], [5.0, 4.0, 3.0, 2.5]
  assert report.first_crossing(x, y, 3.5) == pytest.approx(15.0)
  assert report.first_crossing(x, y, 2.0) is None
  m, sd, hw = report.ci95([1.0, 2.0, 3.0])
  assert (m, sd) == (2.0, 1.0)
  assert hw == pytest.approx(4.302653 / math.sqrt(3), rel=1e-6)  # t_{0.975, 2}


def test_summary_paired_difference():
  def run(final, seed_curve):
    return {"final_test_loss": final, "curve": {"flops": [0, 1], "test_loss": seed_curve,
                                                 "step": [0, 1]},
            "events": [], "spikes": [], "steps": 1, "final_depth": 1, "train_wall_s": 1.0,
            "overhead_s": 0.0, "budget": 1.0}
  results = {"variant": "t", "seeds": 3, "unigram_valid_ppl": 10.0, "runs": {
      "fixed_target": [run(2.0, [3, 2.0]), run(2.2, [3, 2.2]), run(2.1, [3, 2.1])],
      "copy": [run(2.1, [3, 2.1]), run(2.3, [3, 2.3]), run(2.2, [3, 2.2])]}}
  s = report.summarize(results)
  d = s["paired"]["copy - fixed_target"]
  assert d["mean"] == pytest.approx(0.1) and d["std"] == pytest.approx(0.0, abs=1e-12)
  # target 2.1: seed 0 crosses at 0.9 of the budget, seed 2 at 1.0, seed 1 never
  assert s["runs"]["fixed_target"]["flops_to_target"] == pytest.approx(0.95)
  assert s["runs"]["fixed_target"]["reached_target"] == "2/3"
  assert s["runs"]["copy"]["reached_target"] == "1/3"
  assert "| copy |" in report.markdown(results)


def test_isolated_phase_freezes_old_blocks_until_its_boundary():
  cfg = growth_config.get_config("tiny")
  cfg.growth.isolated_steps = 7
  run = controller.GrowthRun(cfg, vocab_size=256)
  run.events = [{"step": 20, "depth_after": 2, "new_blocks": ["block_0"]}]
  run.depth, run.isolated_until = 2, 27
  assert run.frozen(20) == ("block_1",) and run.frozen(26) == ("block_1",)
  assert run.frozen(27) == ()
  assert run.next_boundary(20) == 27  # the phase ends at a segment boundary (new compiled step)


def test_flops_ratio_to_the_fixed_models_loss():
  def run(slope, final_offset=0.0):
    return {"final_test_loss": 3.0 - slope + final_offset, "budget": 1.0,
            "curve": {"flops": [0.0, 1.0], "test_loss": [3.0, 3.0 - slope + final_offset]}}
  fixed = [run(1.0, 0.01), run(1.0, -0.01)]  # mean final loss L* = 2.0, reached at 1.0
  fast = [run(2.0), run(2.0)]                # reaches 2.0 at half the FLOPs
  assert report.flops_ratio(fixed, fast) == pytest.approx(2.0, rel=1e-3)
  b = report.flops_ratio_bootstrap(fixed, fast, n_boot=200)
  assert b["reached"] == 1.0 and 1.9 < b["lo"] <= b["ratio"] <= b["hi"] < 2.1
  slow = [run(0.5), run(0.5)]                # never gets to 2.0
  assert report.flops_ratio(fixed, slow) == 0.0


def test_sweep_regime_budget_is_the_smallest_where_the_target_beats_every_shallower_depth():
  from growth import sweep as sweep_lib
  # final test loss per (depth, budget): depth 4 is best only from budget 400 on, and at 200
  # it beats depth 2 but not depth 1.
  means = {200: {1: 2.0, 2: 2.3, 4: 2.1}, 400: {1: 1.9, 2: 1.85, 4: 1.7},
           800: {1: 1.8, 2: 1.7, 4: 1.5}}
  runs = {}
  for b, per in means.items():
    for d, m in per.items():
      for s, noise in enumerate((0.0, 0.01, -0.01)):
        runs[sweep_lib.key(d, b, s)] = {"final_test_loss": m + noise, "budget": b * 1e9,
                                        "seed": s}
  sw = {"target_depth": 4, "depths": [1, 2, 4], "budgets": [200, 400, 800], "runs": runs}
  s = sweep_lib.summarize(sw)
  assert s["regime_budget"] == 400
  assert s["budgets"][200]["best_depth"] == 1 and not s["budgets"][200]["target_is_best"]
  assert s["budgets"][200]["paired"][2]["target_better"]
  assert s["budgets"][400]["paired"][1]["mean"] == pytest.approx(-0.2)
  assert "| 400 |" in sweep_lib.markdown(sw, s)
  # an experiment's fixed runs at the same budget join as extra seeds (and must agree)
  same = [dict(runs[sweep_lib.key(4, 400, i)]) for i in range(3)]
  exp = {"config": {"train": {"budget_steps": 400, "target_depth": 4},
                    "growth": {"initial_depth": 1}},
         "runs": {"fixed_target": same + [{"final_test_loss": 1.69, "budget": 4e11}]}}
  assert sweep_lib.merge_fixed_runs(sw, exp) == ["d4_b400_s3"]
  assert sweep_lib.summarize(sw)["budgets"][400]["depths"][4]["n"] == 4
  exp["runs"]["fixed_target"][0] = {"final_test_loss": 9.0}
  with pytest.raises(ValueError, match="d4_b400_s0"):
    sweep_lib.merge_fixed_runs(sw, exp)


def test_with_budget_scales_the_growth_protocol():
  from growth import experiment
  base = growth_config.get_config("regime")
  c = experiment.with_budget(base, 1600)
  assert c.train.budget_steps == 1600 and base.train.budget_steps == 400
  assert tuple(c.growth.schedule_steps) == tuple(4 * s for s in base.growth.schedule_steps)
  assert c.growth.warmup_steps == 4 * base.growth.warmup_steps
  assert c.train.eval_every == 4 * base.train.eval_every
  assert c.train.checkpoint_every % c.train.eval_every == 0
  controller.validate(c)
  assert experiment.parse_sets(["data.path=/x", "model.d_model=64"]) == {
      "data.path": "/x", "model.d_model": 64}
