"""Eguchi–Hanson × ℝ³ (the local model of Joyce's resolution): torsion-free, curved with a⁴/r⁶ decay,
one L²-harmonic anti-self-dual 2-form in Λ²₁₄ (float64)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from g2 import curvature
from g2 import eguchi_hanson as eh
from g2 import forms
from g2 import g2form

pytestmark = pytest.mark.usefixtures("x64")
RIEM_CONSTANT = 8.0 * np.sqrt(6.0)  # |Riem| (|u|⁴ + a⁴)^{3/2} / a⁴, measured to 1e-12 (see below)


def _quantities(a, xs):
  ex = eh.eguchi_hanson_r3(a)
  alpha = eh.harmonic_asd_form(a)
  control = eh.kahler_form(lambda u: jnp.log(jnp.sum(u * u)))  # closed (1,1) but not primitive

  def one(x):
    p, g = ex.phi_fn(x), ex.metric_fn(x)
    out = dict(g2form.torsion(ex.phi_fn)(x))
    out.update(curvature.curvature_norms(ex.metric_fn)(x))
    out["metric_error"] = jnp.abs(g2form.metric_from_phi(p)[0] - g).max()
    out["v"] = jnp.sum(x[3:] ** 2)
    a2 = alpha(x)
    star = forms.hodge_star(forms.wedge(p, 3, a2, 2), 5, g)
    out["lambda14_error"] = jnp.abs(star + a2).max() / jnp.abs(a2).max()   # ⋆(φ∧α) = −α
    out["d_alpha"] = jnp.abs(forms.exterior_derivative(alpha, 2)(x)).max()
    out["alpha_sq"] = forms.norm_sq(a2, 2, g)
    c = eh._two_form_7d(control(x[3:]))
    out["control_lambda14_error"] = (jnp.abs(forms.hodge_star(forms.wedge(p, 3, c, 2), 5, g) + c).max()
                                     / jnp.abs(c).max())
    return out
  return jax.jit(jax.vmap(one))(xs)


@pytest.mark.parametrize("a", [1.0, 0.4])
def test_eguchi_hanson_r3_is_torsion_free_and_curved(a):
  ex = eh.eguchi_hanson_r3(a)
  q = _quantities(a, ex.sample(jax.random.PRNGKey(0), 4))
  assert float(q["metric_error"].max()) < 1e-12  # g_φ from the B-formula = dy² + g_EH
  assert float(jnp.sqrt(q["dphi_sq"]).max()) < 1e-12
  assert float(jnp.sqrt(q["dpsi_sq"]).max()) < 1e-12
  assert float(jnp.abs(q["tau0"]).max()) < 1e-12
  assert float(q["ricci"].max()) < 1e-10 * float(q["riemann"].max())
  # |Riem| = 8√6 a⁴ / (|u|⁴ + a⁴)^{3/2}: the same constant at every point and scale a.
  np.testing.assert_allclose(q["riemann"] * (q["v"] ** 2 + a ** 4) ** 1.5 / a ** 4, RIEM_CONSTANT,
                             rtol=1e-9)


def test_curvature_decays_like_r_minus_6():
  a = 0.5
  r = np.array([4.0, 8.0, 16.0]) * a
  d = np.array([0.3, -0.5, 0.7, 0.4]) / np.linalg.norm([0.3, -0.5, 0.7, 0.4])
  xs = jnp.asarray(np.concatenate([np.zeros((3, 3)), r[:, None] * d], axis=1))
  q = _quantities(a, xs)
  slopes = np.diff(np.log(np.asarray(q["riemann"]))) / np.diff(np.log(r))
  np.testing.assert_allclose(slopes, -6.0, atol=0.01)


def test_flat_limit_is_phi0():
  x = jnp.asarray(np.random.default_rng(0).normal(size=7))
  np.testing.assert_array_equal(eh.phi(0.0)(x), g2form.phi0(x.dtype))
  # Far from the bolt the EH structure approaches φ0 (ALE): |φ_a − φ0| = O(a⁴/r⁴).
  far = x.at[3:].set(x[3:] / jnp.linalg.norm(x[3:]) * 20.0)
  assert float(jnp.abs(eh.phi(1.0)(far) - g2form.phi0(far.dtype)).max()) < 1e-4


def test_l2_harmonic_asd_form():
  """α = (i/2)∂∂̄h is closed and in Λ²₁₄ (anti-self-dual on EH), so harmonic; |α|² = O(r⁻⁸)."""
  a = 1.0
  ex = eh.eguchi_hanson_r3(a, r_range=(0.6, 3.0))
  q = _quantities(a, ex.sample(jax.random.PRNGKey(2), 4))
  assert float(q["d_alpha"].max()) < 1e-10
  assert float(q["lambda14_error"].max()) < 1e-10
  assert float(q["control_lambda14_error"].min()) > 0.1  # a closed (1,1) form that is not ASD
  assert float(q["alpha_sq"].min()) > 0
  # L² decay: |α|² r⁸ tends to a constant at large r (so ∫|α|² r³ dr converges).
  r = np.array([10.0, 20.0, 40.0])
  xs = jnp.asarray(np.concatenate([np.zeros((3, 3)), r[:, None] * np.array([[0.5, 0.5, 0.5, 0.5]])], 1))
  far = _quantities(a, xs)
  slopes = np.diff(np.log(np.asarray(far["alpha_sq"]))) / np.diff(np.log(r))
  np.testing.assert_allclose(slopes, -8.0, atol=0.01)


def test_bad_parameters_are_rejected():
  with pytest.raises(ValueError, match="a, r_range"):
    eh.eguchi_hanson_r3(a=0.0)
