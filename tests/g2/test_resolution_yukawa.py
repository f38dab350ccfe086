"""Stage 4's second half (g2/resolution_yukawa.py): the Λ²₁₄ measure, the wedge identity behind the
Yukawa checks, and the two tube integrators (float64, seconds)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from g2 import eguchi_hanson as eh
from g2 import g2form
from g2 import resolution as res
from g2 import resolution_learning as rl
from g2 import resolution_spectrum as rs
from g2 import resolution_yukawa as ry
from g2 import yukawa

pytestmark = pytest.mark.usefixtures("x64")


def _eh_points(a, n=4):
  rng = np.random.default_rng(3)
  d = rng.normal(size=(n, 4))
  d /= np.linalg.norm(d, axis=1, keepdims=True)
  r = a * np.linspace(0.6, 3.0, n)
  return jnp.asarray(np.concatenate([rng.uniform(-1, 1, (n, 3)), r[:, None] * d], 1))


@jax.jit
def _terms_eh(xs):
  a = 0.4
  phi_fn = eh.phi(a)
  alpha = eh.harmonic_asd_form(a)
  kahler = eh.kahler_form(eh.kahler_potential(a))  # ω_I: self-dual on EH, not in Λ²₁₄

  def one(x):
    phi = phi_fn(x)
    g, g_inv, s = g2form.metric_data_from_phi(phi)
    om = jnp.stack([alpha(x), eh._two_form_7d(kahler(x[3:]))])  # pylint: disable=protected-access
    om = jnp.concatenate([om, jax.random.normal(jax.random.PRNGKey(0), (3, 21), x.dtype)])
    return {**ry.lambda2_terms(phi, om, g, g_inv, s), "s": s}
  return jax.vmap(one)(xs)


def test_lambda2_defect_zero_on_eguchi_hanson_asd_form_and_large_on_kahler_form():
  q = _terms_eh(_eh_points(0.4))
  rel = np.sqrt(np.asarray(q["defect_sq"]) / np.asarray(q["norm_sq"]))  # [P, 5]
  assert rel[:, 0].max() < 1e-10  # α ∈ Λ²₁₄: ⋆(φ∧α) = −α
  assert rel[:, 1].min() > 1.0  # ω_I is not (a wrong ⋆ or sign would mix the two)
  assert 0.5 < rel[:, 2:].min() and rel[:, 2:].max() < 2.9  # random forms: O(√3)
  # ω∧ω∧φ = (3|π₇ω|² − |ω|²) vol_g at every point, for every form (wedge vs metric)
  top = np.diagonal(np.asarray(q["wedge_phi"]), axis1=1, axis2=2) / np.asarray(q["s"])[:, None]
  np.testing.assert_allclose(top, np.asarray(q["defect_sq"]) / 3 - np.asarray(q["norm_sq"]),
                             atol=1e-10 * np.abs(top).max())
  np.testing.assert_allclose(top[:, 0], -np.asarray(q["norm_sq"])[:, 0], rtol=1e-9)  # ASD: −|α|²


def test_yukawa_integrand_symmetric_in_the_two_forms():
  rng = np.random.default_rng(0)
  om = jnp.asarray(rng.normal(size=(3, 4, 21)))
  big = jnp.asarray(rng.normal(size=(3, 5, 35)))
  y = np.asarray(yukawa.point_integrand(om, big))
  assert np.abs(y).max() > 1.0
  np.testing.assert_allclose(y, y.transpose(0, 2, 1, 3), atol=1e-12)


@pytest.mark.parametrize("sampler", ["A", "B"])
def test_tube_integrators_are_unbiased_for_a_localised_radial_function(sampler):
  s = rs.SpectrumSettings(t=0.08, points_per_orbit=4096)
  ys = ry.YukawaSettings(points_per_orbit_b=4096)
  rng = np.random.default_rng(5)
  x, w = (rs.sample_orbit_tube(s, 3, rng) if sampler == "A"
          else ry.sample_orbit_mixture(s, ys, 3, rng))
  assert rl.ResolutionLearner.distance_to_tori(x).max() < s.r_tube + 1e-12
  sigma = 2.0 * s.t
  f = lambda r: (1.0 + (r / sigma) ** 4) ** -2.0  # concentrated at |u| ~ 2t
  vals = w * f(rl.ResolutionLearner.distance_to_tori(x))
  est, se = vals.sum(), np.sqrt(len(vals)) * vals.std()
  r = np.linspace(0.0, s.r_tube, 200001)
  radial = np.trapezoid(r ** 3 * f(r), r)
  n_tubes = sum(c.orbit == 3 for c in res.charts())
  exact = n_tubes * res.TWO_PI ** 3 * 2 * np.pi ** 2 * radial / res.TWO_PI ** 7
  assert abs(est - exact) < 4 * se and se < 0.05 * exact
