"""Growth mechanics: function preservation, insertion position, optimizer-state surgery."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from growth import geometry
from growth import model as model_lib
from growth import optim
from growth import steps
from growth import strategies

CFG = model_lib.GPTConfig(vocab_size=50, seq_len=8, d_model=16, n_heads=2)
SPEC = steps.OptimSpec(b1=0.9, b2=0.999, weight_decay=0.0, clip_norm=0.0)


def _logits(params, tokens):
  return _apply(params, tokens)


@jax.jit
def _apply(params, tokens):
  return model_lib.GPT(CFG, model_lib.depth_of(params)).apply({"params": params}, tokens)


TOKENS = jax.random.randint(jax.random.key(1), (2, 8), 0, 50)


def loss(p):
  return steps.cross_entropy(_logits(p, TOKENS), TOKENS)


grad_fn = jax.jit(jax.grad(loss))


@jax.jit
def _adam_step(params, opt):
  d, opt = SPEC.tx().update(grad_fn(params), opt, params)
  return jax.tree.map(lambda p, u: p - 1e-2 * u, params, d), opt


def _trained(depth=2, n=3, seed=0):
  """params and optimizer state after n Adam steps (non-trivial moments and counts)."""
  params = model_lib.init_params(CFG, depth, jax.random.key(seed))
  opt = SPEC.tx().init(params)
  for _ in range(n):
    params, opt = _adam_step(params, opt)
  return params, opt, TOKENS, loss


@pytest.mark.parametrize("position", ["below", "above"])
def test_zero_insertion_is_function_preserving(position):
  params, opt, tokens, _ = _trained()
  spec = strategies.GrowthSpec(strategy="zero", position=position)
  new, _, info = strategies.grow(spec, params, opt, None, tx=SPEC.tx(), cfg=CFG,
                                 rng=jax.random.key(5))
  assert info["depth_after"] == 3
  diff = jnp.abs(_logits(new, tokens) - _logits(params, tokens)).max()
  assert float(diff) < 1e-5
  # a random insertion is not
  spec_r = strategies.GrowthSpec(strategy="random", position=position)
  new_r, _, _ = strategies.grow(spec_r, params, opt, None, tx=SPEC.tx(), cfg=CFG,
                                rng=jax.random.key(5))
  assert float(jnp.abs(_logits(new_r, tokens) - _logits(params, tokens)).max()) > 1e-3


def test_copy_insertion_position_and_bit_exact_moments():
  params, opt, _, _ = _trained(depth=2)
  tx = SPEC.tx()
  below = strategies.GrowthSpec(strategy="copy", position="below")
  new, new_opt, info = strategies.grow(below, params, opt, None, tx=tx, cfg=CFG,
                                       rng=jax.random.key(0))
  assert info["new_blocks"] == ["block_0"]
  chex_equal = lambda a, b: jax.tree.all(jax.tree.map(lambda x, y: bool(jnp.all(x == y)), a, b))
  assert chex_equal(new["block_0"], params["block_0"])      # copy of the frontier (lowest) block
  assert chex_equal(new["block_1"], params["block_0"])      # old blocks shifted up
  assert chex_equal(new["block_2"], params["block_1"])
  adam_old, adam_new = opt[0], new_opt[0]
  assert chex_equal(adam_new.mu["block_1"], adam_old.mu["block_0"])   # moments moved by path
  assert chex_equal(adam_new.nu["block_2"], adam_old.nu["block_1"])
  assert chex_equal(adam_new.mu["wte"], adam_old.mu["wte"])
  assert int(adam_new.count["block_2"]["c_fc"]["kernel"]) == 3
  assert int(adam_new.count["block_0"]["c_fc"]["kernel"]) == 0        # fresh count
  assert float(jnp.abs(adam_new.mu["block_0"]["c_fc"]["kernel"]).max()) == 0.0
  above = strategies.GrowthSpec(strategy="copy", position="above")
  new_a, new_opt_a, info_a = strategies.grow(above, params, opt, None, tx=tx, cfg=CFG,
                                             rng=jax.random.key(0))
  assert info_a["new_blocks"] == ["block_2"]
  assert chex_equal(new_a["block_2"], params["block_1"]) and chex_equal(new_a["block_0"],
                                                                         params["block_0"])
  assert chex_equal(new_opt_a[0].mu["block_1"], opt[0].mu["block_1"])


def test_first_update_of_new_param_is_lr_sign_g():
  params, opt, tokens, loss = _trained(depth=1, n=20)
  tx = SPEC.tx()
  spec = strategies.GrowthSpec(strategy="random", position="above")
  new, new_opt, _ = strategies.grow(spec, params, opt, None, tx=tx, cfg=CFG,
                                    rng=jax.random.key(3))
  g = grad_fn(new)
  direction, _ = jax.jit(tx.update)(g, new_opt, new)
  gk = g["block_1"]["c_fc"]["kernel"]
  dk = direction["block_1"]["c_fc"]["kernel"]
  big = jnp.abs(gk) > 1e-5
  np.testing.assert_allclose(np.asarray(dk)[big], np.sign(np.asarray(gk))[big], rtol=1e-2)
  # The naive alternative: optax's shared count (large) with zero moments inflates it ~3.16x.
  naive = optax.scale_by_adam(b1=0.9, b2=0.999)
  st = naive.init(new)
  st = st._replace(count=jnp.asarray(10_000, jnp.int32))
  dn, _ = naive.update(g, st, new)
  ratio = np.abs(np.asarray(dn["block_1"]["c_fc"]["kernel"])[big])
  assert 3.0 < float(np.median(ratio)) < 3.3


def test_stack_doubles_depth_and_copies_the_stack():
  params, opt, _, _ = _trained(depth=2)
  spec = strategies.GrowthSpec(strategy="stack", stack_factor=2)
  new, new_opt, info = strategies.grow(spec, params, opt, None, tx=SPEC.tx(), cfg=CFG,
                                       rng=jax.random.key(0))
  assert info["depth_after"] == 4 and info["new_blocks"] == ["block_2", "block_3"]
  for i in range(2):
    for a, b in zip(jax.tree.leaves(new[f"block_{i + 2}"]), jax.tree.leaves(params[f"block_{i}"])):
      np.testing.assert_array_equal(a, b)
  assert int(new_opt[0].count["block_3"]["ln_1"]["scale"]) == 0
  assert int(new_opt[0].count["block_1"]["ln_1"]["scale"]) == 3


def test_geometric_block_is_the_extrapolated_frontier_trajectory():
  params, opt, _, _ = _trained(depth=1)
  hist = geometry.snapshot_history(5)
  h = hist.init(params["block_0"])
  rng = np.random.default_rng(0)
  drift = jax.tree.map(lambda p: jnp.asarray(rng.normal(size=p.shape), p.dtype) * 1e-2,
                       params["block_0"])
  for t in range(5):
    h = hist.update(jax.tree.map(lambda p, d: p + t * d + (t % 2) * 0.3 * d[::-1] if d.ndim == 1
                                 else p + t * d + (t % 2) * 0.3 * d, params["block_0"], drift), h)
  ext = geometry.ExtrapolationConfig(k_subspace=2, ell_orth=1, tau_crit=0.0, kappa_crit=0.0)
  spec = strategies.GrowthSpec(strategy="geometric", position="below", extrapolation=ext)
  new, _, info = strategies.grow(spec, params, opt, h, tx=SPEC.tx(), cfg=CFG,
                                 rng=jax.random.key(0))
  expected, _ = geometry.extrapolate_tree(geometry.history_view(h), ext)
  for a, b in zip(jax.tree.leaves(new["block_0"]), jax.tree.leaves(expected)):
    np.testing.assert_allclose(a, b, atol=1e-6)
  assert info["metrics"]["geometry/eta"] > 0
  assert info["metrics"]["geometry/step_norm"] > 0.1  # not a plain copy of the last frame


def test_isolated_step_freezes_old_blocks_and_their_moments():
  state = steps.init_state(CFG, 2, SPEC, 4, jax.random.key(0))
  state = state.replace(budget_used=jnp.float32(0.5))  # past warmup: lr > 0
  batch = {"x": np.zeros((2, 8), np.int32) + 3, "y": np.ones((2, 8), np.int32)}
  before = jax.device_get(state)
  fn = steps.train_step_fn(CFG, 2, SPEC, 0.01, ("block_1",))
  after, metrics = fn(state, batch)
  after = jax.device_get(after)
  np.testing.assert_array_equal(after.params["block_1"]["c_fc"]["kernel"],
                                before.params["block_1"]["c_fc"]["kernel"])
  assert int(after.opt_state[0].count["block_1"]["c_fc"]["kernel"]) == 0
  assert int(after.opt_state[0].count["block_0"]["c_fc"]["kernel"]) == 1
  assert np.abs(after.params["block_0"]["c_fc"]["kernel"]
                - before.params["block_0"]["c_fc"]["kernel"]).max() > 0
  assert float(after.budget_used) == pytest.approx(0.51)


def test_lr_schedule_fully_decays_at_budget():
  spec = steps.OptimSpec(peak_lr=1.0, warmup_fraction=0.1)
  assert float(steps.lr_at(jnp.float32(0.05), spec)) == pytest.approx(0.5)
  assert float(steps.lr_at(jnp.float32(0.1), spec)) == pytest.approx(1.0)
  assert float(steps.lr_at(jnp.float32(0.55), spec)) == pytest.approx(0.5, abs=1e-6)
  assert float(steps.lr_at(jnp.float32(1.0), spec)) == pytest.approx(0.0, abs=1e-7)


def test_bad_growth_spec_errors():
  with pytest.raises(ValueError, match="strategy='grow'"):
    strategies.GrowthSpec(strategy="grow")
  with pytest.raises(ValueError, match="position='middle'"):
    strategies.GrowthSpec(position="middle")


def test_msg_mask_ramp_endpoints():
  mix = lambda step: np.asarray(steps.block_mix(3, (0,), 10, step, 40))
  np.testing.assert_array_equal(mix(40), [0.0, 1.0, 1.0])   # at the growth step: identity
  np.testing.assert_allclose(mix(45), [0.5, 1.0, 1.0])
  np.testing.assert_array_equal(mix(50), [1.0, 1.0, 1.0])   # after ramp_steps: the plain block
  np.testing.assert_array_equal(mix(80), [1.0, 1.0, 1.0])
  assert steps.block_mix(3, (), 10, 45, 40) is None


@pytest.mark.parametrize("position", ["below", "above"])
def test_msg_insertion_is_function_preserving_at_mask_0_and_plain_at_1(position):
  params, opt, tokens, _ = _trained()
  spec = strategies.GrowthSpec(strategy="msg", position=position)
  new, _, info = strategies.grow(spec, params, opt, None, tx=SPEC.tx(), cfg=CFG,
                                 rng=jax.random.key(5))
  i = int(info["new_blocks"][0].split("_")[1])
  assert i == (0 if position == "below" else 2)
  model = model_lib.GPT(CFG, 3)
  mix0 = jnp.ones(3).at[i].set(0.0)
  out0 = model.apply({"params": new}, tokens, block_mix=mix0)
  assert float(jnp.abs(out0 - _logits(params, tokens)).max()) < 1e-5
  out1 = model.apply({"params": new}, tokens, block_mix=jnp.ones(3))
  np.testing.assert_allclose(out1, _logits(new, tokens), atol=1e-6)
  # the new block is a fresh (non-zero) block: the full model differs from the old one
  assert float(jnp.abs(out1 - _logits(params, tokens)).max()) > 1e-3
  half = model.apply({"params": new}, tokens, block_mix=jnp.ones(3).at[i].set(0.5))
  assert 1e-4 < float(jnp.abs(half - out0).max()) < float(jnp.abs(out1 - out0).max())
