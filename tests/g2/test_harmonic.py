"""Betti numbers of T^7 from the Hodge-Laplacian spectral gap (Rayleigh-Ritz), and head losses."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import g2 as g2_config
from g2 import g2form, harmonic, problems, validation

pytestmark = pytest.mark.usefixtures("x64")


@pytest.fixture(scope="module")
def background_phi_fn():
  return problems.TorusProblem(g2_config.get_config("tiny")).background_phi_fn()


@pytest.mark.parametrize("k,betti", [(2, 21), (3, 35)])
def test_betti_numbers_of_t7_from_the_spectral_gap(k, betti, background_phi_fn):
  # Non-flat (torsionful) background metric: the Betti numbers are topological, the harmonic
  # forms are no longer constant, and the trial space only approximates them.
  h_fn, n = harmonic.fourier_trial_fn(k, max_frequency=1, directions=1)
  grid = validation.grid_points(3)
  res = harmonic.betti_estimate(h_fn, k, background_phi_fn, grid, chunk=729, gap_ratio=10.0)
  lam = res["eigenvalues"]
  assert res["trial_dim"] == n == 3 * (21 if k == 2 else 35)
  assert res["betti"] == betti
  assert lam[betti - 1] < 0.05 and lam[betti] > 0.5
  assert res["gap_ratio"] > 10.0


def test_flat_spectrum_is_exact_on_the_grid():
  h_fn, _ = harmonic.fourier_trial_fn(2, max_frequency=1, directions=1)
  flat = lambda x: g2form.phi0(x.dtype)  # noqa: E731
  res = harmonic.betti_estimate(h_fn, 2, flat, validation.grid_points(3), chunk=2187,
                                gap_ratio=10.0)
  np.testing.assert_allclose(res["eigenvalues"][:21], 0.0, atol=1e-5)
  np.testing.assert_allclose(res["eigenvalues"][21:], 1.0, atol=1e-5)  # |k|^2 = 1


def test_spectral_gap_reports_no_gap_honestly():
  assert harmonic.spectral_gap_count(np.linspace(1.0, 2.0, 30), gap_ratio=10.0)["count"] is None
  assert harmonic.spectral_gap_count(np.r_[np.full(5, 1e-9), np.ones(7)], 10.0)["count"] == 5


def test_head_losses_vanish_for_orthonormal_constant_heads_on_flat_t7():
  eye = jnp.eye(21)
  m, d = harmonic.batch_matrices(lambda x: eye[:4], 2, lambda x: g2form.phi0(x.dtype),
                                 jnp.asarray(np.random.default_rng(0).uniform(0, 6.28, (8, 7))))
  gram, energy = harmonic.head_losses(m, d)
  assert float(gram) == pytest.approx(0.0, abs=1e-12)
  assert float(energy) == pytest.approx(0.0, abs=1e-12)
  # a non-constant head has Dirichlet energy |k|^2 |a|^2 on average; not zero
  m2, d2 = harmonic.batch_matrices(lambda x: jnp.cos(x[0]) * eye[3:4], 2,
                                   lambda x: g2form.phi0(x.dtype),
                                   jnp.asarray(validation.grid_points(3)))
  assert float(d2[0, 0] / m2[0, 0]) == pytest.approx(1.0, rel=1e-6)
