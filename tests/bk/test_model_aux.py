"""bk.compress, bk.regularizers: quantisation/pruning ground truths, Koopman and energy losses."""
import jax
import jax.numpy as jnp
import numpy as np

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


def test_energy_loss_vanishes_for_constant_trajectory_only():
  head = regularizers.EnergyHead(hidden=8)
  const = jnp.broadcast_to(jnp.arange(6.0), (2, 10, 6))
  params = head.init(jax.random.key(0), const)
  assert float(head.apply(params, const)) < 1e-12  # E_t = T(0) + V(h) is constant in t
  moving = jax.random.normal(jax.random.key(1), (2, 10, 6))
  assert float(head.apply(params, moving)) > 1e-4


def test_koopman_loss_ground_truth():
  """Constant h, decoder = constant h: loss = smooth_l1((A - I) phi(h)) exactly."""
  head = regularizers.KoopmanHead(koopman_dim=5)
  h0 = jnp.array([0.3, -0.2, 0.1, 0.4])
  h = jnp.broadcast_to(h0, (2, 6, 4))
  p = head.init(jax.random.key(1), h)["params"]
  p = jax.tree.map(lambda x: x, p)
  p["decode"] = {"kernel": jnp.zeros((5, 4)), "bias": h0}
  p["operator"] = jnp.eye(5)
  assert float(head.apply({"params": p}, h)) == 0.0
  a = jnp.eye(5) + 0.3 * jax.random.normal(jax.random.key(2), (5, 5))
  p["operator"] = a
  phi = jnp.tanh(h0 @ p["lift_in"]["kernel"] + p["lift_in"]["bias"]) @ p["lift_out"]["kernel"]
  phi = phi + p["lift_out"]["bias"]
  expected = regularizers.smooth_l1(jnp.broadcast_to(phi @ (a - jnp.eye(5)).T, (2, 5, 5)))
  np.testing.assert_allclose(head.apply({"params": p}, h), expected, rtol=1e-5)
  grads = jax.grad(lambda pp: head.apply({"params": pp}, h))(p)
  assert float(jnp.abs(grads["operator"]).max()) > 1e-4  # the operator is learned
