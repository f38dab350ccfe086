"""jepa.monitor and the monitored features: collapse is caught, every patch is pooled."""
import jax
import jax.numpy as jnp
import numpy as np

from configs import jepa as jepa_configs
from jepa import evaluation
from jepa import loss as loss_lib
from jepa import model as model_lib
from jepa import monitor as monitor_lib
from jepa import step as step_lib


def _eval_metrics(feats, level="pooled"):
  stats = evaluation.collapse_stats(feats, f"eval/{level}")
  return {k: v for k, v in stats.items()}


def _healthy(n=400, d=32, seed=0):
  return np.random.default_rng(seed).normal(size=(n, d))


def test_monitor_alarms_on_rank_collapse_that_a_floor_misses():
  """Rank 32 -> rank ~4 features: ratio alarm fires while the rank stays far above the 2.0 floor."""
  mon = monitor_lib.CollapseMonitor(("pooled",), erank_drop=0.3, std_drop=0.1, erank_floor=2.0)
  x = _healthy()
  extra, alarms = mon.update(_eval_metrics(x), 100, dims={"pooled": x})
  assert alarms == [] and extra["eval/collapse_alarm"] == 0.0
  low = x[:, :4] @ np.random.default_rng(1).normal(size=(4, 32))  # rank 4, same scale
  m = _eval_metrics(low)
  assert m["eval/pooled/effective_rank"] > 3.0  # above the old fixed floor: it would stay silent
  extra, alarms = mon.update(m, 200, dims={"pooled": low})
  assert extra["eval/collapse_alarm"] == 1.0
  assert any("effective rank" in a for a in alarms)
  assert extra["eval/pooled/effective_rank_ratio"] < 0.7


def test_monitor_alarms_on_constant_and_rank_one_encoders():
  for collapsed in (np.ones((400, 32)) * 3.0,                                  # constant output
                    np.outer(np.random.default_rng(2).normal(size=400), np.ones(32))):  # rank one
    mon = monitor_lib.CollapseMonitor(("pooled",))
    mon.update(_eval_metrics(_healthy()), 1, dims={"pooled": _healthy()})
    extra, alarms = mon.update(_eval_metrics(collapsed), 2, dims={"pooled": collapsed})
    assert extra["eval/collapse_alarm"] == 1.0, alarms


def test_monitor_alarms_on_per_dimension_std_collapse():
  """Every dimension shrinks 100x: the rank is unchanged, the std alarm and dead dims fire."""
  mon = monitor_lib.CollapseMonitor(("pooled",), std_drop=0.1)
  x = _healthy()
  mon.update(_eval_metrics(x), 1, dims={"pooled": x})
  extra, alarms = mon.update(_eval_metrics(1e-2 * x), 2, dims={"pooled": 1e-2 * x})
  assert extra["eval/pooled/effective_rank_ratio"] > 0.99
  assert any("per-dimension std" in a for a in alarms)
  dead = x.copy()
  dead[:, :24] = 1e-6 * dead[:, :24]  # 75 % of the dimensions die
  extra, alarms = mon.update(_eval_metrics(dead), 3, dims={"pooled": dead})
  assert extra["eval/pooled/dead_dim_fraction"] == 0.75
  assert any("dimensions have collapsed" in a for a in alarms)


def test_monitor_reference_survives_restart():
  hist = {"eval/pooled/effective_rank": (np.array([100, 200]), np.array([20.0, 25.0])),
          "eval/pooled/std": (np.array([100, 200]), np.array([1.0, 0.9]))}
  mon = monitor_lib.CollapseMonitor.from_history(hist, ["pooled"])
  assert mon.best_erank == {"pooled": 25.0} and mon.best_std == {"pooled": 1.0}
  _, alarms = mon.update({"eval/pooled/effective_rank": 12.0, "eval/pooled/std": 1.0}, 300)
  assert alarms  # 12 / 25 = 48 % of the best rank seen before the restart


def test_pool_grid_uses_every_patch():
  """7 x 7 grid, 4 x 4 windows: 4 windows of 16, 12, 12, 9 tokens (old VALID pooling: one of 16)."""
  grid = jnp.arange(49.0).reshape(1, 7, 7, 1)
  out = np.asarray(step_lib.pool_grid(grid, 4))[0, :, 0]
  g = np.arange(49.0).reshape(7, 7)
  np.testing.assert_allclose(out, [g[:4, :4].mean(), g[:4, 4:].mean(), g[4:, :4].mean(),
                                   g[4:, 4:].mean()], rtol=1e-6)
  np.testing.assert_allclose(step_lib.pool_grid(grid, 1)[0, :, 0], g.ravel())


def test_feature_fn_levels_cover_the_grid():
  cfg = jepa_configs.get_config("tiny")
  vit = model_lib.vit_config(cfg.model, cfg.data.image_size, 1)
  hier = loss_lib.hierarchy_from_config(cfg.hierarchy, vit.depth, vit.grid)
  fn = step_lib.make_feature_fn(vit, hier, np.array([0.5]), np.array([0.25]))
  params = model_lib.Encoder(vit).init(jax.random.key(0), jnp.zeros((1, vit.image_size, vit.image_size, 1)))["params"]
  feats = fn(params, jnp.zeros((2, cfg.data.image_size, cfg.data.image_size, 1), jnp.uint8))
  rows, cols = vit.grid
  for level in range(hier.num_levels):
    p = 2 ** level
    assert feats[f"level_{level}"].shape[1] == (-(-rows // p)) * (-(-cols // p))
