"""Held-out Rayleigh quotients of the M_t Ritz forms (g2/resolution_heldout.py): the sub-space rows
and the quotient algebra (float64, seconds)."""
import dataclasses

import jax.numpy as jnp
import numpy as np
import pytest

from g2 import resolution as res
from g2 import resolution_heldout as rh
from g2 import resolution_spectrum as rs

pytestmark = pytest.mark.usefixtures("x64")

TINY = rs.SpectrumSettings(t=0.16, base="glued", scales=(1.0, 2.0, 4.0), powers=(1, 2),
                           global_frequencies=0)


@pytest.mark.parametrize("k", [2, 3])
def test_subspace_without_a_scale_selects_the_forms_of_the_space_built_without_it(k):
  small = dataclasses.replace(TINY, scales=(1.0, 4.0))
  h_full, n_full = rs.local_trial_fn(k, TINY)
  h_small, n_small = rs.local_trial_fn(k, small)
  n_glob, n_orb = 5, 12
  idx = rh.subspace_rows(TINY, k, n_glob, n_orb, drop_scales=(2.0,))
  assert len(idx) == n_glob + n_orb * n_small
  local = idx[n_glob:n_glob + n_small] - n_glob  # orbit 0's rows inside its local block
  np.testing.assert_array_equal(idx[n_glob + n_small:n_glob + 2 * n_small] - n_glob - n_full, local)
  c = [ch for ch in res.charts() if ch.orbit == 0][0]
  x = jnp.asarray(np.mod(c.centre + c.frame @ np.array([0.1, 0.2, 0.3, 0.05, -0.1, 0.08, 0.12]),
                         res.TWO_PI))
  hf, hs = np.asarray(h_full(x, 0)), np.asarray(h_small(x, 0))
  assert np.abs(hs).max() > 0.1
  np.testing.assert_allclose(hf[local], hs, rtol=1e-12, atol=1e-14)


def test_heldout_quotient_is_the_ritz_value_on_the_same_sample_and_not_on_another():
  rng = np.random.default_rng(0)

  def sample(n=400, dim=30):  # Monte Carlo Gram / Dirichlet matrices of 30 "trial forms"
    a, b = rng.normal(size=(n, dim)) @ np.diag(np.logspace(0, 2, dim)), rng.normal(size=(n, dim))
    return a.T @ a / n, (a + b).T @ (a + b) / n

  m0, d0 = sample()
  r = rh.ritz_and_heldout(m0, d0, m0, d0, 8)
  np.testing.assert_allclose(r["heldout_quotient"], r["ritz"], rtol=1e-9)
  np.testing.assert_allclose(r["same_sample_quotient"], r["ritz"], rtol=1e-9)
  np.testing.assert_allclose(r["heldout_mean_sq"], 1.0, rtol=1e-9)
  r1 = rh.ritz_and_heldout(m0, d0, *sample(), 8)
  np.testing.assert_allclose(r1["ritz"], r["ritz"])
  # the Ritz values minimise on their own sample: on a fresh one the lowest quotient is higher
  assert r1["heldout_quotient"][0] > 1.05 * r["ritz"][0]
