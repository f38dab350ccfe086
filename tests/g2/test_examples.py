"""Exact solutions: torsion-free examples have dφ = dψ = 0, Ric = 0, ∇φ = 0 with Riem = O(1);
negative examples have their known torsion (reference §3.4–3.6; float64)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from g2 import curvature
from g2 import examples
from g2 import forms
from g2 import g2form

pytestmark = pytest.mark.usefixtures("x64")


def _everything(ex, curvature_of_g_phi: bool, holonomy: bool):
  """One jitted, vmapped function computing every checked quantity of an example.

  The curvature is that of g_φ (nested jacfwd through metric_from_phi) or, to save compile
  time in CI, of the closed-form metric, which is checked equal to g_φ at the same points.
  """
  def metric_phi(x):
    return g2form.metric_from_phi(ex.phi_fn(x))[0]

  @jax.jit
  @jax.vmap
  def f(x):
    out = dict(g2form.torsion(ex.phi_fn)(x))
    out.update(curvature.curvature_norms(metric_phi if curvature_of_g_phi else ex.metric_fn)(x))
    if holonomy:
      out["nabla_phi"] = curvature.nabla_phi_norm(ex.phi_fn)(x)
    out["metric_error"] = jnp.abs(metric_phi(x) - ex.metric_fn(x)).max()
    return out
  return f(ex.sample(jax.random.PRNGKey(0), 3))


@pytest.mark.parametrize("example,curvature_of_g_phi,holonomy", [
    (examples.gibbons_hawking(), False, False),
    (examples.gibbons_hawking(((0.0, 0.0, 0.0), (0.3, -0.4, -1.5)), weight=0.7), False, True),
    (examples.bryant_salamon(), True, True),
], ids=lambda v: v.name if isinstance(v, examples.Example) else str(v))
def test_torsion_free_examples(example, curvature_of_g_phi, holonomy):
  q = _everything(example, curvature_of_g_phi, holonomy)
  assert float(q["metric_error"].max()) < 1e-12  # g_φ from the B-formula = closed form
  assert float(jnp.sqrt(q["dphi_sq"]).max()) < 1e-10
  assert float(jnp.sqrt(q["dpsi_sq"]).max()) < 1e-10
  assert float(jnp.abs(q["tau0"]).max()) < 1e-10
  assert float(q["ricci"].max()) < 1e-8
  assert float(q["riemann"].min()) > 0.1  # genuinely curved
  if holonomy:
    assert float(q["nabla_phi"].max()) < 1e-10


def test_nonharmonic_gibbons_hawking_is_not_torsion_free():
  q = _everything(examples.gibbons_hawking_nonharmonic(), False, False)
  assert float(q["metric_error"].max()) < 1e-12
  assert float(q["dphi_sq"].min()) > 1e-2
  assert float(q["ricci"].min()) > 1e-2


@pytest.mark.parametrize("example", [examples.rotating_frame(0.7), examples.conformal()],
                         ids=lambda e: e.name)
def test_known_torsion_examples(example):
  xs = example.sample(jax.random.PRNGKey(1), 4)
  tors = jax.jit(jax.vmap(g2form.torsion(example.phi_fn)))(xs)
  for key, fn in example.expected.items():
    if key in tors:
      np.testing.assert_allclose(tors[key], jax.vmap(fn)(xs), rtol=1e-11, err_msg=key)
  np.testing.assert_allclose(tors["tau0"], 0.0, atol=1e-12)
  np.testing.assert_allclose(tors["sqrt_det_g"], jax.vmap(
      lambda x: jnp.sqrt(jnp.linalg.det(example.metric_fn(x))))(xs), rtol=1e-12)
  g_phi = jax.vmap(lambda x: g2form.metric_from_phi(example.phi_fn(x))[0])(xs)
  np.testing.assert_allclose(g_phi, jax.vmap(example.metric_fn)(xs), atol=1e-12)


def test_bad_parameters_are_rejected():
  with pytest.raises(ValueError, match="a, r_range"):
    examples.bryant_salamon(a=1.0, r_range=(0.5, 2.0))
