"""G2 algebra ground truths of reference §3.1–3.3 (float64)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from g2 import forms
from g2 import g2form

pytestmark = pytest.mark.usefixtures("x64")


def test_phi0_psi0_identities():
  phi, psi = g2form.phi0(), g2form.psi0()
  eye = np.eye(7)
  np.testing.assert_allclose(g2form.bilinear_b(phi), eye, atol=1e-15)  # ε φφφ = 144 δ
  t = forms.to_tensor(phi, 3)
  np.testing.assert_allclose(jnp.einsum("ikl,jkl->ij", t, t), 6 * eye, atol=1e-15)
  np.testing.assert_allclose(forms.wedge(phi, 3, psi, 4), [7.0])  # φ0∧ψ0 = 7 vol
  np.testing.assert_allclose(forms.norm_sq(phi, 3, eye), 7.0)  # φ_ijk φ^ijk = 42
  np.testing.assert_array_equal(forms.hodge_star(phi, 3, eye), psi)
  np.testing.assert_allclose(g2form.psi_from_phi(phi), psi, atol=1e-15)
  # (e_i⌟φ0)∧(e_j⌟φ0)∧φ0 = 6 δ_ij vol.
  u = forms.interior(eye, phi[None], 3)
  gram = jax.vmap(lambda a: jax.vmap(
      lambda b: forms.wedge(forms.wedge(a, 2, b, 2), 4, phi, 3)[0])(u))(u)
  np.testing.assert_allclose(gram, 6 * eye, atol=1e-14)


def test_metric_of_pullback_is_a_transpose_a(gl_plus):
  for _ in range(3):
    a = gl_plus()
    phi = g2form.pullback(g2form.phi0(), a)
    g, sqrt_det_g = g2form.metric_from_phi(phi)
    np.testing.assert_allclose(g, a.T @ a, atol=1e-12)
    np.testing.assert_allclose(sqrt_det_g, np.linalg.det(a), rtol=1e-12)
    # The original's contraction g_ij = (1/6) φ_ikl φ_jkl is wrong here.
    t = forms.to_tensor(phi, 3)
    assert np.abs(jnp.einsum("ikl,jkl->ij", t, t) / 6 - a.T @ a).max() > 0.1


def test_metric_scaling_and_diagonal_example():
  g, sqrt_det_g = g2form.metric_from_phi(2.0 * g2form.phi0())
  np.testing.assert_allclose(g, 2.0 ** (2 / 3) * np.eye(7), atol=1e-14)  # λ^(2/3), not λ^2
  np.testing.assert_allclose(sqrt_det_g, 2.0 ** (7 / 3), rtol=1e-14)
  a = np.diag([2.0, 1, 1, 1, 1, 1, 1])
  g, _ = g2form.metric_from_phi(g2form.pullback(g2form.phi0(), a))
  np.testing.assert_allclose(g, np.diag([4.0, 1, 1, 1, 1, 1, 1]), atol=1e-14)


def test_degenerate_and_negative_forms_are_rejected():
  e123 = np.zeros(35)
  e123[forms.component_index([0, 1, 2])] = 1.0
  np.testing.assert_allclose(g2form.bilinear_b(e123), 0.0)
  with pytest.raises(ValueError, match="positive 3-form"):
    g2form.metric_from_phi(e123)
  with pytest.raises(ValueError, match="positive 3-form"):
    g2form.metric_from_phi(-g2form.phi0())  # wrong orientation: B negative definite
  # Under jit a non-positive form gives NaN (never a silent number).
  g, sqrt_det_g = jax.jit(g2form.metric_from_phi)(jnp.asarray(e123))
  assert np.isnan(np.asarray(g)).all() and np.isnan(sqrt_det_g)
  assert float(g2form.positivity_margin(g2form.phi0())) == pytest.approx(1.0)
  assert float(g2form.positivity_margin(-g2form.phi0())) < 0


def test_identities_for_a_general_positive_form(gl_plus, rng):
  phi = g2form.pullback(g2form.phi0(), gl_plus())
  g, g_inv, sqrt_det_g = g2form.metric_data_from_phi(phi)
  psi = g2form.psi_from_phi(phi)
  md = dict(g_inv=g_inv, sqrt_det_g=sqrt_det_g)
  np.testing.assert_allclose(forms.norm_sq(phi, 3, g), 7.0, rtol=1e-12)
  np.testing.assert_allclose(forms.wedge(phi, 3, psi, 4)[0], 7.0 * sqrt_det_g, rtol=1e-12)
  alpha = rng.normal(size=7)
  a_sq = forms.norm_sq(alpha, 1, g, **md)
  np.testing.assert_allclose(forms.norm_sq(forms.wedge(alpha, 1, phi, 3), 4, g, **md), 4 * a_sq,
                             rtol=1e-11)
  np.testing.assert_allclose(forms.norm_sq(forms.wedge(alpha, 1, psi, 4), 5, g, **md), 3 * a_sq,
                             rtol=1e-11)
  vec = g_inv @ alpha  # α^♯
  np.testing.assert_allclose(forms.norm_sq(forms.interior(vec, phi, 3), 2, g, **md), 3 * a_sq,
                             rtol=1e-11)


def test_lambda2_splitting_signs(rng):
  # w ∈ Λ²_7 = {α⌟φ}: w∧w∧φ = 2|w|² vol; w ∈ Λ²_14 (w∧ψ = 0): w∧w∧φ = −|w|² vol.
  phi, psi, eye = g2form.phi0(), g2form.psi0(), np.eye(7)
  w7 = forms.interior(rng.normal(size=7), phi, 3)
  w = rng.normal(size=21)
  # Project onto Λ²_14 = kernel of w -> w∧ψ (a linear map R^21 -> R^7 (6-forms)).
  basis = np.eye(21)
  m = np.stack([forms.wedge(b, 2, psi, 4) for b in basis], axis=1)
  _, _, vt = np.linalg.svd(m)
  w14 = vt[7:].T @ (vt[7:] @ w)
  for v, c in ((w7, 2.0), (w14, -1.0)):
    www = forms.wedge(forms.wedge(v, 2, v, 2), 4, phi, 3)[0]
    np.testing.assert_allclose(www, c * forms.norm_sq(v, 2, eye), rtol=1e-11)


def _rotating_frame(k):
  def phi_fn(x):
    c, s = jnp.cos(k * x[3]), jnp.sin(k * x[3])
    r = jnp.eye(7, dtype=x.dtype).at[0, 0].set(c).at[0, 1].set(-s).at[1, 0].set(s).at[1, 1].set(c)
    return g2form.pullback(g2form.phi0(x.dtype), r)
  return phi_fn


def test_torsion_of_a_constant_form_is_zero(gl_plus):
  # (Conformal and rotating-frame torsion against their formulas: tests/g2/test_examples.py.)
  phi = g2form.pullback(g2form.phi0(), gl_plus())
  xs = jax.random.uniform(jax.random.PRNGKey(0), (3, 7), minval=-1.0, maxval=1.0)
  tors = jax.jit(jax.vmap(g2form.torsion(lambda x: phi + 0.0 * x[0])))(xs)
  for key in ("dphi_sq", "dpsi_sq", "tau0", "tau1_sq"):
    np.testing.assert_allclose(tors[key], 0.0, atol=1e-14)
  np.testing.assert_allclose(tors["sqrt_det_g"], g2form.metric_from_phi(phi)[1], rtol=1e-12)


def test_rotating_frame_dphi_components():
  k, x = 1.0, jnp.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7])
  d = np.asarray(jax.jit(forms.exterior_derivative(_rotating_frame(k), 3))(x))
  c, s = np.cos(k * 0.4), np.sin(k * 0.4)
  expected = np.zeros(35)
  for idx, val in (((1, 4, 5, 7), k * c), ((1, 4, 6, 7), k * s), ((2, 4, 5, 7), -k * s),
                   ((2, 4, 6, 7), k * c)):
    expected[forms.component_index([i - 1 for i in idx])] = val
  np.testing.assert_allclose(d, expected, atol=1e-14)


def test_psi_tangents_match_jvp(gl_plus, rng):
  phi = g2form.pullback(g2form.phi0(), gl_plus(0.2))
  dots = rng.normal(size=(4, 35))
  tangents = jax.jit(g2form.psi_tangents)
  psi, psi_dots = tangents(phi, dots)
  np.testing.assert_allclose(psi, g2form.psi_from_phi(phi), atol=1e-12)
  ref = jax.jit(jax.vmap(lambda t: jax.jvp(g2form.psi_from_phi, (phi,), (t,))[1]))(dots)
  np.testing.assert_allclose(psi_dots, ref, rtol=1e-9, atol=1e-9 * np.abs(ref).max())
  # Scaling direction: d/dλ ψ(λφ) at λ = 1 is (4/3) ψ.
  _, scale_dot = tangents(phi, np.stack([phi] * 4))
  np.testing.assert_allclose(scale_dot[0], 4.0 / 3.0 * psi, atol=1e-11)


def test_torsion_dpsi_equals_brute_force_derivative_of_psi():
  # A generic x-dependent positive φ: the fast dψ (closed-form linearisation, one 2-form star)
  # must equal d of x -> ⋆_{g_φ(x)} φ(x) differentiated through all of the metric code.
  mix = jax.random.normal(jax.random.PRNGKey(4), (7, 7, 7)) * 0.15

  def phi_fn(x):
    return g2form.pullback(g2form.phi0(x.dtype), jnp.eye(7, dtype=x.dtype) + jnp.sin(mix @ x))

  def brute(x):
    dpsi = forms.exterior_derivative(lambda y: g2form.psi_from_phi(phi_fn(y)), 4)(x)
    dphi = forms.exterior_derivative(phi_fn, 3)(x)
    g = g2form.metric_from_phi(phi_fn(x))[0]
    return forms.norm_sq(dphi, 4, g), forms.norm_sq(dpsi, 5, g)

  xs = jax.random.uniform(jax.random.PRNGKey(5), (3, 7), minval=-1.0, maxval=1.0)
  fast = jax.jit(jax.vmap(g2form.torsion(phi_fn)))(xs)
  dphi_sq, dpsi_sq = jax.jit(jax.vmap(brute))(xs)
  assert float(dpsi_sq.min()) > 1e-2
  np.testing.assert_allclose(fast["dphi_sq"], dphi_sq, rtol=1e-11)
  np.testing.assert_allclose(fast["dpsi_sq"], dpsi_sq, rtol=1e-11)
