"""Yukawa integrals: constant-form ground truths on T^7, (i, j) symmetry, MC vs grid, Tucker."""
import jax.numpy as jnp
import numpy as np
import pytest

from g2 import forms, g2form, yukawa

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


def test_mc_and_grid_agree_within_the_mc_error_bar_and_y_is_symmetric():
  omega, big_phi = _smooth_forms(3)
  y_grid, _ = yukawa.integrate(omega, big_phi, yukawa.grid_points(4), chunk=4096)
  y_mc, err = yukawa.integrate(omega, big_phi, yukawa.mc_points(20000, seed=5), chunk=5000)
  # Trigonometric degree <= 3 per coordinate: the 4^7 periodic grid is exact for it.
  z = np.abs(y_mc - y_grid) / err
  assert np.max(z) < 5.0 and np.mean(z < 3.0) > 0.9
  np.testing.assert_allclose(y_grid, y_grid.transpose(1, 0, 2), atol=1e-5)
  assert np.abs(y_grid).max() > 0.1


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
