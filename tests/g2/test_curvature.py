"""Curvature by nested jacfwd and the |∇φ| holonomy test against exact values (float64)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from g2 import curvature
from g2 import examples

pytestmark = pytest.mark.usefixtures("x64")


def _round_sphere(x):
  """Unit 7-sphere in stereographic coordinates: g = 4 δ / (1 + |x|²)²."""
  return 4.0 / (1.0 + jnp.dot(x, x)) ** 2 * jnp.eye(7, dtype=x.dtype)


@pytest.fixture(scope="module")
def sphere_points():
  return jax.random.uniform(jax.random.PRNGKey(3), (3, 7), minval=-0.8, maxval=0.8)


def test_round_sphere_curvature(sphere_points):
  @jax.jit
  @jax.vmap
  def quantities(x):
    g = _round_sphere(x)
    riem = curvature.riemann(_round_sphere)(x)
    riem_low = jnp.einsum("ae,ebcd->abcd", g, riem)
    expected = jnp.einsum("ac,bd->abcd", g, g) - jnp.einsum("ad,bc->abcd", g, g)
    return (riem_low - expected, curvature.ricci(_round_sphere)(x) - 6.0 * g,
            curvature.scalar_curvature(_round_sphere)(x), curvature.curvature_norms(_round_sphere)(x))

  riem_err, ric_err, scalar, norms = quantities(sphere_points)
  assert float(jnp.abs(riem_err).max()) < 1e-11  # R_abcd = g_ac g_bd − g_ad g_bc
  assert float(jnp.abs(ric_err).max()) < 1e-11  # Ric = (n−1) g
  np.testing.assert_allclose(scalar, 42.0, rtol=1e-12)  # n(n−1)
  np.testing.assert_allclose(norms["riemann"], np.sqrt(2 * 7 * 6), rtol=1e-12)
  np.testing.assert_allclose(norms["ricci"], 6 * np.sqrt(7), rtol=1e-12)


def test_christoffel_is_metric_compatible_and_torsion_free(sphere_points):
  def metric(x):
    a = jnp.array([[1.0, 0.2, 0, 0, 0, 0, 0.1]]) * jnp.sin(x)[:, None]
    return jnp.eye(7, dtype=x.dtype) * (1.5 + jnp.cos(x[2])) + a.T @ a + 0.1 * jnp.outer(x, x)

  x = sphere_points[0]
  gamma = jax.jit(curvature.christoffel(metric))(x)
  np.testing.assert_allclose(gamma, jnp.swapaxes(gamma, 1, 2), atol=1e-14)
  g, dg = metric(x), jnp.moveaxis(jax.jacfwd(metric)(x), -1, 0)  # dg[k, i, j] = ∂_k g_ij
  np.testing.assert_allclose(dg, jnp.einsum("lki,lj->kij", gamma, g)
                             + jnp.einsum("lkj,il->kij", gamma, g), atol=1e-13)


def test_nabla_phi_known_values():
  k = 0.7
  rot = examples.rotating_frame(k)
  conf = examples.conformal()
  xs = rot.sample(jax.random.PRNGKey(0), 3)
  np.testing.assert_allclose(jax.jit(jax.vmap(curvature.nabla_phi_norm(rot.phi_fn)))(xs), 2 * k,
                             rtol=1e-12)
  got = jax.jit(jax.vmap(curvature.nabla_phi_norm(conf.phi_fn)))(xs)
  np.testing.assert_allclose(got**2, jax.vmap(conf.expected["nabla_phi_sq"])(xs), rtol=1e-11)
