"""Yukawa integrals: constant-form ground truths on T^7, the analytic pairing of known harmonic
forms on a non-constant metric, MC vs grid convergence, no tensor without harmonic forms, Tucker."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ml_collections

from configs import g2 as g2_config
from g2 import forms, g2form, harmonic, problems, yukawa

pytestmark = pytest.mark.usefixtures("x64")


def test_raw_constant_integral_is_two_pi_to_the_seventh():
  # ∫ dx12 ∧ dx34 ∧ dx567 = (2 pi)^7; the package integrates against d^7x / (2 pi)^7 -> 1.
  w12 = np.zeros(21); w12[forms.component_index([0, 1])] = 1
  w34 = np.zeros(21); w34[forms.component_index([2, 3])] = 1
  p567 = np.zeros(35); p567[forms.component_index([4, 5, 6])] = 1
  omega = lambda x: jnp.stack([jnp.asarray(w12), jnp.asarray(w34)])  # noqa: E731
  big_phi = lambda x: jnp.asarray(p567)[None]  # noqa: E731
  mean, err = yukawa.integrate(omega, big_phi, yukawa.grid_points(2), chunk=64)
  assert mean[0, 1, 0] == pytest.approx(1.0, abs=1e-12)
  assert mean[0, 1, 0] * (2 * np.pi) ** 7 == pytest.approx((2 * np.pi) ** 7)
  np.testing.assert_allclose(err, 0.0, atol=1e-12)


def test_constant_basis_against_phi0_has_eigenvalues_two_x7_and_minus_one_x14():
  # L2-orthonormal constant 2-forms dx^{ij} (flat metric); Y_ij = ∫ w_i ∧ w_j ∧ phi0.
  rng = np.random.default_rng(0)
  q, _ = np.linalg.qr(rng.normal(size=(21, 21)))  # any orthonormal basis: the spectrum is invariant
  omega = lambda x: jnp.asarray(q.T)  # noqa: E731
  big_phi = lambda x: g2form.phi0(jnp.float64)[None]  # noqa: E731
  xs = yukawa.mc_points(16, seed=1)
  y, err = yukawa.integrate(omega, big_phi, xs, chunk=16)
  mat = y[:, :, 0]
  np.testing.assert_allclose(mat, mat.T, atol=1e-12)
  eig = np.sort(np.linalg.eigvalsh(mat))
  np.testing.assert_allclose(eig, [-1.0] * 14 + [2.0] * 7, atol=1e-10)
  np.testing.assert_allclose(err, 0.0, atol=1e-10)


def _smooth_forms(seed):
  rng = np.random.default_rng(seed)
  a2, k2 = rng.normal(size=(3, 21, 2)), rng.integers(-1, 2, size=(3, 21, 7))
  a3, k3 = rng.normal(size=(2, 35, 2)), rng.integers(-1, 2, size=(2, 35, 7))

  def omega(x):
    ph = jnp.einsum("fck,k->fc", k2, x)
    return a2[..., 0] + a2[..., 1] * jnp.cos(ph)

  def big_phi(x):
    ph = jnp.einsum("fck,k->fc", k3, x)
    return a3[..., 0] + a3[..., 1] * jnp.sin(ph)

  return omega, big_phi


def test_mc_and_grid_agree_within_the_mc_error_bar():
  omega, big_phi = _smooth_forms(3)
  y_grid, _ = yukawa.integrate(omega, big_phi, yukawa.grid_points(4), chunk=4096)
  y_mc, err = yukawa.integrate(omega, big_phi, yukawa.mc_points(20000, seed=5), chunk=5000)
  # Trigonometric degree <= 3 per coordinate: the 4^7 periodic grid is exact for it.
  z = np.abs(y_mc - y_grid) / err
  assert np.max(z) < 5.0 and np.mean(z < 3.0) > 0.9
  assert np.abs(y_grid).max() > 0.1


def _cfg(grid_ns=(2, 3, 4), mc=4096):
  c = ml_collections.ConfigDict()
  c.mc_samples, c.grid_ns, c.chunk, c.tucker_rank, c.seed = mc, grid_ns, 4096, (3, 3, 3), 123
  return c


@pytest.fixture(scope="module")
def pullback_heads():
  """Harmonic forms known in closed form on a non-constant metric: for g = F^* delta (F a
  periodic diffeomorphism), F^* dx^I is closed and co-closed (F is an isometry (T^7, F^*delta)
  -> (T^7, delta)), and ∫ F^*a ∧ F^*b ∧ F^*c = ∫ a ∧ b ∧ c (degree one)."""
  problem = problems.TorusProblem(g2_config.get_config("tiny"))
  fd = problem.diffeo
  phi_fn = problem.exact_phi_fn()

  def pulled(k):
    def h(x):
      a = jax.jacfwd(lambda y: problems.diffeo_map(fd, y))(x)
      eye = jnp.eye(forms.num_components(k), dtype=x.dtype)
      t = forms.to_tensor(eye, k)
      t = (jnp.einsum("ai,bj,nab->nij", a, a, t) if k == 2 else
           jnp.einsum("ai,bj,ck,nabc->nijk", a, a, a, t))
      return forms.from_tensor(t, k)
    return h

  xs = harmonic.grid_points(3)  # grid quadrature: the Ritz vectors' Gram is accurate (not MC)
  grid = harmonic.grid_points(3)
  out = harmonic.trial_space_ladders(phi_fn, grid, np.zeros((0, 7)), (0,), (), chunk=2187,
                                     gap_ratio=10.0)
  heads = {}
  for k in (2, 3):
    h = pulled(k)
    res = harmonic.betti_estimate(h, k, phi_fn, xs, chunk=2187, gap_ratio=10.0,
                                  reference=out["reference"])
    heads[k] = (h, res)
  return heads


def test_pullback_harmonic_forms_have_the_analytic_pairing(pullback_heads):
  for k, b in ((2, 21), (3, 35)):
    res = pullback_heads[k][1]
    assert np.max(np.abs(res["eigenvalues"])) < 1e-8  # exactly harmonic
    assert res["betti"] == b
  rep = yukawa.yukawa_report(pullback_heads, _cfg(grid_ns=(2, 3), mc=2048), None)
  assert rep["shape"] == [21, 21, 35]
  # Analytic value: the L2(g)-orthonormal harmonic basis is an orthogonal transform of the
  # pulled-back orthonormal constant basis, so Y has the mode-n singular values of the constant
  # triple-product table (basis-invariant).
  exact = yukawa.mode_singular_values(yukawa.triple_coefficients())
  for got, want in zip(rep["mode_singular_values"], exact):
    np.testing.assert_allclose(got, want, rtol=5e-3, atol=5e-3)
  assert rep["cup_product_check_max_rel"] < 5e-3
  assert rep["basis_invariance_max_rel"] < 1e-4
  # Y of exactly closed forms is topological, so every grid gets it and Monte Carlo agrees.
  conv = rep["grid_convergence"]
  assert conv[0]["max_abs_diff_to_finest_grid_rel"] < 1e-3
  assert conv[-1]["mc_frac_within_3sigma"] > 0.9


def test_wrong_density_or_non_closed_forms_fail_the_checks(pullback_heads):
  # An extra sqrt(det g) (the double count the module doc warns about) or a non-closed form
  # breaks the cup-product check: the check can fail.
  (h2, r2), (h3, r3) = pullback_heads[2], pullback_heads[3]
  bent = {2: (lambda x: h2(x) * (1.0 + 0.3 * jnp.cos(x[0] + x[3])), r2), 3: (h3, r3)}
  rep = yukawa.yukawa_report(bent, _cfg(grid_ns=(3,), mc=512), None)
  assert rep["cup_product_check_max_rel"] > 1e-2


def test_no_tensor_when_no_head_is_harmonic(tmp_path):
  # Heads cos(x1) dx^I: Ritz values ~1 against a reference ~1, nothing harmonic.
  flat = lambda x: g2form.phi0(x.dtype)  # noqa: E731
  xs = harmonic.grid_points(3)
  heads = {}
  for k in (2, 3):
    nk = forms.num_components(k)
    h = lambda x, nk=nk: jnp.cos(x[0]) * jnp.eye(nk, dtype=x.dtype)[:3]  # noqa: E731
    heads[k] = (h, harmonic.betti_estimate(h, k, flat, xs, chunk=2187, gap_ratio=10.0,
                                           reference=1.0))
  # Lowest Ritz value 1 = the reference: a count of 0 (the estimator no longer answers "no gap"
  # when the whole space is at least as stiff as the scalar scale).
  assert heads[2][1]["betti"] == 0 and heads[2][1]["eigenvalues"][0] > 0.99
  rep = yukawa.yukawa_report(heads, _cfg(), str(tmp_path))
  assert rep["tensor"] is None and "no harmonic 2-form head" in rep["reason"]
  assert not (tmp_path / "yukawa_tensor.npy").exists()


def test_tucker_reconstructs_a_low_rank_tensor_and_singular_values_are_basis_invariant():
  rng = np.random.default_rng(0)
  core = rng.normal(size=(2, 2, 2))
  u = np.linalg.qr(rng.normal(size=(5, 2)))[0]
  w = np.linalg.qr(rng.normal(size=(6, 2)))[0]
  core = core + core.transpose(1, 0, 2)
  y = np.einsum("abc,ia,jb,kc->ijk", core, u, u, w)
  summary = yukawa.tucker_summary(y, (2, 2, 2))
  assert summary["relative_reconstruction_error"] < 1e-5
  rot5 = np.linalg.qr(rng.normal(size=(5, 5)))[0]
  rot6 = np.linalg.qr(rng.normal(size=(6, 6)))[0]
  y_rot = np.einsum("abc,ia,jb,kc->ijk", y, rot5, rot5, rot6)
  for s, s_rot in zip(yukawa.mode_singular_values(y), yukawa.mode_singular_values(y_rot)):
    np.testing.assert_allclose(s, s_rot, atol=1e-10)
