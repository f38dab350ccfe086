"""The tail trial forms of the M_t spectrum (`g2.resolution_tails`, float64): the periodic Green's
function of the transverse 4-torus, and the tail forms' closedness, anti-self-duality far out and
Γ-invariance."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from g2 import eguchi_hanson as eh
from g2 import forms
from g2 import joyce
from g2 import resolution_tails as rt

pytestmark = pytest.mark.usefixtures("x64")


def test_green_function_is_split_independent_periodic_with_constant_laplacian():
  rng = np.random.default_rng(0)
  u = jnp.asarray(rng.uniform(-3.0, 3.0, (3, 4)))
  shift = 2 * np.pi * jnp.asarray([1.0, 0.0, -1.0, 2.0])
  g = rt.green()
  vals = jax.jit(jax.vmap(lambda y: jnp.stack([
      rt.green(0.5, 36)(y), rt.green(0.6, 36)(y), g(y), g(y + shift),
      jnp.trace(jax.hessian(g)(y))])))(u)
  vals = np.asarray(vals)
  np.testing.assert_allclose(vals[:, 0], vals[:, 1], atol=1e-8)  # the constant −a/4π² included
  np.testing.assert_allclose(vals[:, 2], vals[:, 0], atol=1e-7)  # the default split, |k|² ≤ 20
  np.testing.assert_allclose(vals[:, 3], vals[:, 2], atol=1e-12)  # 2π-periodic
  np.testing.assert_allclose(vals[:, 4], 1 / (4 * np.pi ** 2), atol=1e-6)  # ΔG = 1/4π²
  # G − 1/|u|² is smooth at the point: the same value along different directions and radii.
  g = rt.green()
  vals = [float(g(jnp.asarray(r * d))) - 1 / r ** 2 for r in (1e-3, 1e-2)
          for d in (np.asarray([1.0, 0, 0, 0]), np.asarray([0, 1.0, 1, 0]) / np.sqrt(2))]
  np.testing.assert_allclose(vals, vals[0], atol=1e-4)


def test_chart_tail_form_is_closed_and_flat_harmonic_outside_the_cut_off():
  # Outside the cut-off α = (i/2)∂∂̄(−G): its self-dual part is the constant −(ΔG/8) ω_I
  # (no Re Ω, Im Ω part), the rest anti-self-dual; closed (a ∂∂̄ of a function).
  lo, hi = 0.45 ** 2, 0.75 ** 2
  hess = rt.potential_hessian(0.08, lo, hi)
  rng = np.random.default_rng(1)
  u = rng.uniform(-3.0, 3.0, (6, 4))
  u = jnp.asarray(u[np.linalg.norm(u, axis=1) > 0.8][:2])
  # Closed: d of the 2-form (i/2)∂∂̄F on ℝ³ × ℝ⁴ via autodiff.
  omega = lambda w: eh._two_form_7d(rt.form_of_hessian(hess(w[3:])))  # pylint: disable=protected-access
  w = jnp.concatenate([jnp.zeros((len(u), 3)), u], 1)
  alpha, d = jax.jit(jax.vmap(lambda y: (rt.form_of_hessian(hess(y[3:])), forms.exterior_derivative_from_jacobian(
      jax.jacfwd(omega)(y)[None], 2))))(w)
  sd = [np.asarray([[0, 1, 0, 0], [-1, 0, 0, 0], [0, 0, 0, 1], [0, 0, -1, 0.]]),  # ω_I
        np.asarray([[0, 0, 1, 0], [0, 0, 0, -1], [-1, 0, 0, 0], [0, 1, 0, 0.]]),  # Re Ω
        np.asarray([[0, 0, 0, 1], [0, 0, 1, 0], [0, -1, 0, 0], [-1, 0, 0, 0.]])]  # Im Ω
  comps = np.einsum("pab,iab->pi", np.asarray(alpha), np.stack(sd)) / 4
  np.testing.assert_allclose(comps[:, 0], -1 / (32 * np.pi ** 2), atol=1e-7)
  np.testing.assert_allclose(comps[:, 1:], 0.0, atol=1e-7)
  np.testing.assert_allclose(np.asarray(d), 0.0, atol=1e-9)


def test_tail_forms_are_gamma_invariant_and_closed():
  fn, n = rt.tail_trial_fn(2, 0.08, 0.45 ** 2, 0.75 ** 2, subtract_core=False, k2_max=2)
  assert n == 12
  rng = np.random.default_rng(2)
  x = jnp.asarray(rng.uniform(0.0, 2 * np.pi, (2, 7)))
  both = jax.jit(jax.vmap(lambda y: (fn(y), joyce.average_forms(2, fn)(y),
                                     forms.exterior_derivative_from_jacobian(jax.jacfwd(fn)(y), 2))))
  val, avg, d = (np.asarray(a) for a in both(x))
  assert np.abs(val).max() > 1e-3
  np.testing.assert_allclose(avg, val, atol=1e-12)
  np.testing.assert_allclose(d, 0.0, atol=1e-9)
