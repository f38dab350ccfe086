"""Train step: stop-gradient targets, EMA timing and schedule, accumulation, one compilation."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import jepa as jepa_configs
from jepa import loss as loss_lib
from jepa import masking
from jepa import model as model_lib
from jepa import step as step_lib


def _setup(accum=1, **overrides):
  config = jepa_configs.get_config("tiny")
  config.optim.grad_accum_steps = accum
  config.train.batch_size = 8
  for k, v in overrides.items():
    section, key = k.split(".")
    config[section][key] = v
  vit = model_lib.vit_config(config.model, 28, 1)
  hier = loss_lib.hierarchy_from_config(config.hierarchy, vit.depth, vit.grid)
  sched = step_lib.make_schedules(config)
  tx = step_lib.make_optimizer(config, sched)
  state = step_lib.init_state(config, vit, hier, tx, jax.random.PRNGKey(0))
  step = step_lib.make_train_step(config, vit, hier, sched, np.array([0.3]), np.array([0.35]))
  images = np.random.default_rng(0).integers(0, 255, (8, 28, 28, 1), dtype=np.uint8)
  return config, state, step, {"images": jnp.asarray(images)}


def test_no_gradient_reaches_target_encoder():
  config, state, step, batch = _setup()
  # Make target != online so a leak would be visible, then differentiate w.r.t. the target.
  target = jax.tree.map(lambda p: p * 1.5 + 0.01, state.target.params)
  state = state.replace(target=state.target._replace(params=target))

  def loss_wrt_target(tp):
    s = state.replace(target=state.target._replace(params=tp))
    return step(s, batch)[1]["train/loss"]

  grads = jax.jit(jax.grad(loss_wrt_target))(target)
  assert max(float(jnp.abs(g).max()) for g in jax.tree.leaves(grads)) == 0.0


def test_ema_after_optimizer_step_once_per_step_under_accumulation():
  config, state, step, batch = _setup(accum=2)
  traces = []

  def counted(s, b):
    traces.append(1)
    return step(s, b)

  jstep = jax.jit(counted)
  state, metrics = jstep(state, batch)  # learning rate 0 at step 0 (warmup from 0)
  assert int(state.target.count) == 1 and int(state.step) == 1
  assert float(metrics["train/ema_momentum"]) == pytest.approx(config.ema.start)
  old_target = state.target.params
  new, metrics = jstep(state, batch)
  m1 = float(step_lib.make_schedules(config).ema(1))
  assert float(metrics["train/ema_momentum"]) == pytest.approx(m1) and m1 > config.ema.start
  # target_2 = m1 * target_1 + (1 - m1) * online_2 (the params *after* the optimizer step),
  # applied once although the step ran two micro-batches.
  assert int(new.target.count) == 2
  expect = jax.tree.map(lambda t, o: m1 * t + (1 - m1) * o, old_target, new.params["encoder"])
  for a, b in zip(jax.tree.leaves(new.target.params), jax.tree.leaves(expect)):
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
  assert max(float(jnp.abs(a - b).max()) for a, b in
             zip(jax.tree.leaves(new.params["encoder"]), jax.tree.leaves(old_target))) > 1e-5
  new, metrics = jstep(new, batch)
  assert int(new.target.count) == 3 and len(traces) == 1  # one compilation
  assert np.isfinite(float(metrics["train/loss"]))


def test_schedules():
  config = jepa_configs.get_config("default")
  config.train.num_steps = 100
  s = step_lib.make_schedules(config)
  np.testing.assert_allclose([s.ema(0), s.ema(50), s.ema(100)], [0.996, 0.998, 1.0], rtol=1e-7)
  assert float(s.learning_rate(0)) == 0.0
  assert float(s.learning_rate(10)) == pytest.approx(1e-3)
  assert float(s.learning_rate(100)) == pytest.approx(1e-6)
  np.testing.assert_allclose([s.weight_decay(0), s.weight_decay(100)], [0.04, 0.4], rtol=1e-6)


def test_weight_decay_mask_excludes_bias_and_norm():
  _, state, _, _ = _setup()
  mask = step_lib.decay_mask(state.params)
  flat = {jax.tree_util.keystr(p): v for p, v in jax.tree_util.tree_leaves_with_path(mask)}
  assert all(v for k, v in flat.items() if k.endswith("['kernel']"))
  assert not any(v for k, v in flat.items() if k.endswith("['bias']") or k.endswith("['scale']"))
  assert not flat["['predictor']['mask_token']"]


def test_layers_hierarchy_heads_and_targets():
  """kind=layers: level l predicts target block hierarchy.layers[l] through its own predictor head.

  With both levels pointing at the last block and head 1 a copy of head 0, the two level losses
  are equal (a ground truth); pointing level 1 at block 1 changes only its loss.
  """
  config = jepa_configs.get_config("tiny")
  config.hierarchy.kind, config.hierarchy.weights, config.hierarchy.layers = "layers", (1.0, 0.5), (0, 0)
  vit = model_lib.vit_config(config.model, 28, 1)
  hier = loss_lib.hierarchy_from_config(config.hierarchy, vit.depth, vit.grid)
  state = step_lib.init_state(config, vit, hier, step_lib.make_optimizer(config, step_lib.make_schedules(config)),
                              jax.random.PRNGKey(0))
  params = jax.tree.map(lambda x: x, state.params)
  params["predictor"]["proj_1"] = params["predictor"]["proj"]
  images = jax.random.normal(jax.random.PRNGKey(1), (4, 28, 28, 1))
  masks = masking.sample_masks(jax.random.PRNGKey(2), vit.grid, 4, config.mask)
  target = jax.tree.map(lambda p: p * 1.1, state.target.params)

  def losses(h):
    return jax.jit(lambda p, t: step_lib.jepa_loss(p, t, images, masks, vit, h, "smooth_l1")[1])(params, target)

  same = losses(hier)
  assert float(same["loss/level_0"]) == pytest.approx(float(same["loss/level_1"]), rel=1e-6)
  other = losses(hier._replace(layers=(vit.depth, 1)))
  assert float(other["loss/level_0"]) == pytest.approx(float(same["loss/level_0"]), rel=1e-6)
  assert abs(float(other["loss/level_1"]) - float(same["loss/level_1"])) > 1e-4
