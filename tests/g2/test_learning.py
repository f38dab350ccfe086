"""Learning objectives: the anti-collapse guard, positivity flags, calibration, closed ansätze."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import g2 as g2_config
from g2 import forms, g2form, objective, problems

pytestmark = pytest.mark.usefixtures("x64")


@pytest.fixture(scope="module")
def torus():
  return problems.TorusProblem(g2_config.get_config("tiny"))


@pytest.fixture(scope="module")
def points(torus):
  return jnp.asarray(torus.sample(np.random.default_rng(0), 32, 8), jnp.float64)


def test_background_is_closed_but_not_coclosed_and_matches_the_core(torus, points):
  phi_fn = torus.background_phi_fn()
  core = jax.jit(lambda xs: objective.torsion_statistics(phi_fn, xs))(points[:8])
  lean = jax.jit(lambda xs: objective.training_statistics(phi_fn, xs))(points[:8])
  assert float(core["closure"]) < 1e-20  # phi = phi0 + d beta: d phi = 0 identically
  assert float(core["coclosure"]) > 1e-4
  assert float(lean["coclosure"]) == pytest.approx(float(core["coclosure"]), rel=1e-10)


def test_scaled_phi_never_looks_less_torsioned(torus, points):
  """Anti-collapse guard: T(eps phi) = T(phi) for the reported, volume-normalised torsion."""
  phi_fn = torus.background_phi_fn()
  stats = jax.jit(lambda eps: objective.training_statistics(lambda x: eps * phi_fn(x), points))
  base = stats(1.0)
  for eps in (1e-3, 0.1, 10.0):
    scaled = stats(eps)
    assert float(scaled["torsion"]) >= float(base["torsion"]) * (1 - 1e-9)
    assert float(scaled["torsion"]) == pytest.approx(float(base["torsion"]), rel=1e-9)
    # ... whereas the un-normalised integral ∫|dpsi|^2 vol ~ eps^(5/3) would reward collapse.
    raw = lambda st: st["coclosure"] * st["mean_sqrt_det_g"] ** (5 / 7)  # noqa: E731
    assert float(raw(scaled)) == pytest.approx(float(raw(base)) * eps ** (5 / 3), rel=1e-8)


def test_degenerate_phi_is_flagged():
  e123 = jnp.zeros(35, jnp.float64).at[0].set(1.0)  # e^123: B = 0, no metric
  assert not float(g2form.positivity_margin(e123)) > 1e-3
  with pytest.raises(ValueError, match="positive 3-form"):
    g2form.metric_from_phi(e123)
  # under jit the metric is NaN, so the loss (and the loop's non-finite check) sees it
  g, s = jax.jit(g2form.metric_from_phi)(e123)
  assert not np.isfinite(float(s))
  assert float(g2form.positivity_margin(g2form.phi0(jnp.float64))) == pytest.approx(1.0)


def test_calibration_is_one_on_the_associative_plane_and_has_gradients(points):
  p0 = g2form.phi0(jnp.float64)

  def stats(t):
    # phi = A^* phi0 with A e1 = e1 + t e4: phi(e1, e2, e3) = 1 but vol_g(P) = sqrt(1 + t^2)
    a = jnp.eye(7, dtype=jnp.float64).at[3, 0].set(t)
    phi = g2form.pullback(p0, a)
    return objective.training_statistics(lambda x: phi + 0.0 * x[0], points[:4], plane=(0, 1, 2))

  f = jax.jit(jax.value_and_grad(lambda t: stats(t)["calibration"]))
  ratio = jax.jit(lambda t: stats(t)["calibration_ratio"])
  assert float(ratio(0.0)) == pytest.approx(1.0, abs=1e-12)
  assert float(ratio(0.2)) == pytest.approx(1 / np.sqrt(1.04), rel=1e-10)
  loss, grad = f(0.2)
  assert float(loss) == pytest.approx((1 / np.sqrt(1.04) - 1) ** 2, rel=1e-8)
  assert float(grad) == pytest.approx(2 * (1 / np.sqrt(1.04) - 1) * (-0.2 / 1.04 ** 1.5), rel=1e-6)


def test_bryant_salamon_ansatz_is_torsion_free_with_exact_profiles():
  problem = problems.BryantSalamonProblem(g2_config.get_config("bryant_salamon_quick"))
  xs = jnp.asarray(problem.sample(np.random.default_rng(1), 16, 8), jnp.float64)

  @jax.jit
  def torsion(b_factor):
    phi_fn = lambda x: problems.bryant_salamon_phi(  # noqa: E731
        x, *[p * f for p, f in zip(problems.bryant_salamon_exact_profiles(x[0], 1.0),
                                   (1.0, b_factor, 1.0))])
    return objective.training_statistics(phi_fn, xs)["torsion"]

  assert float(torsion(1.0)) < 1e-20
  assert float(torsion(1.05)) > 1e-4  # a 5% error in B breaks it


def test_bad_problem_and_counts_give_clear_errors(tmp_path):
  from common.config_validation import ConfigError
  from g2 import train
  c = g2_config.get_config("tiny")
  c.problem.name = "neck"
  with pytest.raises(ConfigError, match="config.problem.name='neck'"):
    train.train_and_evaluate(c, str(tmp_path))
  c = g2_config.get_config("tiny")
  c.model.n_h3 = -1
  with pytest.raises(ConfigError, match="config.model.n_h3=-1"):
    train.train_and_evaluate(c, str(tmp_path))


def test_default_torus_answer_is_not_readable_by_the_linear_skip():
  # The default background: no linear read-off. The planted one (sanity check): the linear
  # skip recovers the exact correction and the torsion drops to round-off.
  hidden = problems.TorusProblem(g2_config.get_config("quick"))
  planted = problems.TorusProblem(g2_config.get_config("quick_planted"))
  assert hidden.background_kind == "diffeo_high_frequency"
  r_hidden = problems.linear_readout(hidden, max_frequency=2, n_points=1024, n_held=128)
  r_planted = problems.linear_readout(planted, max_frequency=2, n_points=1024, n_held=128)
  assert r_planted["eta_fraction_captured"] > 0.999 and r_planted["reduction"] > 1e6
  assert r_hidden["eta_fraction_captured"] < 0.05
  assert r_hidden["reduction"] < 2.0
  assert r_hidden["torsion_background"] > 1e-3


def test_default_torus_exact_answer_is_torsion_free_and_not_constant():
  problem = problems.TorusProblem(g2_config.get_config("quick"))
  xs = jnp.asarray(problem.sample(np.random.default_rng(2), 16, 8), jnp.float64)
  exact = problem.exact_phi_fn()
  def stats(fn):
    return jax.jit(lambda y: objective.torsion_statistics(fn, y))(xs)

  assert float(stats(exact)["torsion"]) < 1e-20  # F^* phi0: closed and co-closed
  g = jax.vmap(lambda x: g2form.metric_from_phi(exact(x))[0])(xs)
  assert float(jnp.max(jnp.abs(g - jnp.eye(7)))) > 0.01  # flat but not constant in x (DF^T DF)
  bg = problem.background_phi_fn()
  assert float(stats(bg)["closure"]) < 1e-20 and float(stats(bg)["coclosure"]) > 1e-3
  # phi_bar + d eta* = phi*: eta* = -beta is the known (non-unique) correction
  d_eta = jax.vmap(forms.exterior_derivative(problem.exact_eta, 2))(xs)
  np.testing.assert_allclose(jax.vmap(bg)(xs) + d_eta, jax.vmap(exact)(xs), atol=1e-12)
