"""bk.compress, bk.regularizers: quantisation/pruning ground truths, Koopman and energy losses."""
import jax
import jax.numpy as jnp
import numpy as np
import optax

from bk import compress
from bk import regularizers


def test_int8_quantisation_error_bound_and_ratio():
  w = jax.random.normal(jax.random.key(0), (3, 40, 24))  # e.g. experts [E, in, out]
  q, scale = compress.quantize_int8(w)
  assert q.dtype == jnp.int8 and scale.shape == (3, 1, 24)
  np.testing.assert_allclose(scale[..., 0, :], jnp.max(jnp.abs(w), axis=1) / 127, rtol=1e-6)
  err = jnp.abs(q.astype(jnp.float32) * scale - w)
  assert bool(jnp.all(err <= scale / 2 + 1e-7))  # round-to-nearest: at most half a step
  params = {"kernel": w, "bias": jnp.ones(24)}
  out, stats = compress.compress(params, int8=True, prune_threshold=0.0)
  n_mat, n_scale, n_vec = 3 * 40 * 24, 3 * 24, 24
  assert stats["ratio"] == 4 * (n_mat + n_vec) / (n_mat + 4 * n_scale + 4 * n_vec)
  np.testing.assert_array_equal(out["bias"], params["bias"])


def test_pruning_zeroes_small_weights_only():
  w = jnp.array([[0.01, -0.2], [0.049, -0.051]])
  out, stats = compress.compress({"k": w, "b": jnp.array([0.001])}, int8=False,
                                 prune_threshold=0.05)
  np.testing.assert_array_equal(out["k"], jnp.array([[0.0, -0.2], [0.0, -0.051]]))
  np.testing.assert_array_equal(out["b"], jnp.array([0.001]))  # vectors are not pruned
  assert stats["sparsity"] == 0.5 and stats["ratio"] == 1.0


def _fit(head, params, h, steps, lr=3e-2):
  """Adam on the head's own loss (the LM's hidden states h held fixed); returns final params."""
  opt = optax.adam(lr)
  state = opt.init(params)

  @jax.jit
  def step(params, state):
    loss, g = jax.value_and_grad(lambda p: head.apply(p, h))(params)
    upd, state = opt.update(g, state)
    return optax.apply_updates(params, upd), state, loss

  for _ in range(steps):
    params, state, _ = step(params, state)
  return params


def _oscillator(batch=4, n=24, d=2):
  """h_t = (x_t, x_{t-1}) for harmonic oscillators x_t = r cos(w t + p): [batch, n, d]."""
  t = jnp.arange(n, dtype=jnp.float32)
  key = jax.random.key(3)
  r = 1.0 + jax.random.uniform(key, (batch, 1))
  p = jax.random.uniform(jax.random.fold_in(key, 1), (batch, 1)) * 6.0
  x = lambda s: r * jnp.cos(0.7 * (t - s) + p)
  return jnp.stack([x(0), x(1)], axis=-1)[..., :d]


def test_energy_loss_constant_potential_costs_one_and_is_not_a_minimum():
  """The original's zero-output solution (V = const) now costs exactly 1, and descent leaves it."""
  head = regularizers.EnergyHead(hidden=16)
  h = _oscillator()
  params = head.init(jax.random.key(0), h)
  flat = jax.tree.map(lambda x: x, params)
  last = flat["params"]["potential_out"]
  flat["params"]["potential_out"] = {"kernel": jnp.zeros_like(last["kernel"]),
                                             "bias": last["bias"] + 3.0}
  np.testing.assert_allclose(float(head.apply(flat, h)), 1.0, rtol=1e-6)
  # T_t = (x_t - x_{t-1})^2 / 2 is a function of h_t here, so V = -T conserves E exactly:
  # a trained potential must explain most of dT (a loss that V = const minimises would not move).
  trained = _fit(head, params, h, steps=300)
  assert float(head.apply(trained, h)) < 0.1
  # Invariant to the scale of h once V adapts: the same fit on 10 h reaches the same level.
  assert float(head.apply(_fit(head, params, 10.0 * h, steps=300), 10.0 * h)) < 0.1


def test_koopman_loss_is_invariant_to_lift_scale_and_trivial_lift_costs_one():
  """Scaling the lift down and the decoder up (the original's shortcut) changes nothing."""
  head = regularizers.KoopmanHead(koopman_dim=6)
  h = jax.random.normal(jax.random.key(1), (2, 12, 4))
  p = head.init(jax.random.key(2), h)["params"]
  base = float(head.apply({"params": p}, h))
  for c in (0.1, 10.0):
    q = jax.tree.map(lambda x: x, p)
    q["lift_out"] = jax.tree.map(lambda x: c * x, p["lift_out"])
    q["decode"] = {"kernel": p["decode"]["kernel"] / c, "bias": p["decode"]["bias"]}
    np.testing.assert_allclose(float(head.apply({"params": q}, h)), base, rtol=1e-4)
  # A constant lift carries nothing: reconstruction can only be the mean of h (relative error 1).
  q = jax.tree.map(lambda x: x, p)
  q["lift_out"] = {"kernel": jnp.zeros_like(p["lift_out"]["kernel"]), "bias": jnp.ones(6)}
  q["operator"] = jnp.eye(6)
  q["decode"] = {"kernel": p["decode"]["kernel"], "bias": jnp.mean(h, axis=(0, 1)) -
                 jnp.ones(6) @ p["decode"]["kernel"]}
  np.testing.assert_allclose(float(head.apply({"params": q}, h)), 1.0, rtol=1e-5)


def test_koopman_loss_learns_linear_dynamics():
  """On rotating oscillators (linear dynamics) a trained head goes far below the trivial 1."""
  head = regularizers.KoopmanHead(koopman_dim=4)
  h = _oscillator(d=2)
  params = head.init(jax.random.key(4), h)
  assert float(head.apply(_fit(head, params, h, steps=400), h)) < 0.1
