"""T⁷/Γ learning problem (g2/orbifold.py): a Γ-equivariant diffeomorphism, a Γ-invariant closed
φ for every parameter value, the averaged skip's linear read-off, config errors."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from common.config_validation import ConfigError
from configs import g2 as g2_config
from g2 import forms, g2form, joyce, objective, orbifold, problems, train

pytestmark = pytest.mark.usefixtures("x64")
TWO_PI = 2 * np.pi


@pytest.fixture(scope="module")
def problem():
  return orbifold.OrbifoldProblem(g2_config.get_config("orbifold_tiny"))


@pytest.fixture(scope="module")
def xs():
  return jnp.asarray(np.random.default_rng(3).uniform(0, TWO_PI, (6, 7)))


def _random_params(problem, seed=0, scale=0.05):
  """η network parameters with every leaf random (the init zeroes the output layers)."""
  params = problem.init_params(jax.random.PRNGKey(seed))
  leaves, tree = jax.tree.flatten(params)
  keys = jax.random.split(jax.random.PRNGKey(seed + 1), len(leaves))
  return jax.tree.unflatten(tree, [scale * jax.random.normal(k, l.shape, jnp.float64)
                                   for k, l in zip(keys, leaves)])


def _torus_distance(a, b):
  """Largest coordinate distance on (ℝ/2πℤ)⁷."""
  d = np.mod(np.asarray(a) - np.asarray(b) + np.pi, TWO_PI) - np.pi
  return float(np.max(np.abs(d)))


def test_averaged_diffeomorphism_commutes_with_gamma_and_is_not_trivial(problem, xs):
  fmap = jax.jit(jax.vmap(problem.diffeo_fn()))
  raw = jax.jit(jax.vmap(lambda x: problems.diffeo_map(problem.diffeo, x)))
  raw_errs = []
  for g in joyce.group():
    gx = jnp.asarray(g.apply(np.asarray(xs) / TWO_PI) * TWO_PI)  # g in 2π-periodic coordinates
    g_fx = g.apply(np.asarray(fmap(xs)) / TWO_PI) * TWO_PI
    assert _torus_distance(fmap(gx), g_fx) < 1e-12, g.name  # F∘g = g∘F
    raw_errs.append(_torus_distance(raw(gx), g.apply(np.asarray(raw(xs)) / TWO_PI) * TWO_PI))
  assert max(raw_errs) > 1e-3  # the displacement before averaging is not equivariant
  u = np.asarray(fmap(xs)) - np.asarray(xs)
  assert np.sqrt(np.mean(u ** 2)) > 1e-3  # the average does not vanish


def test_base_is_invariant_torsion_free_and_not_constant(problem, xs):
  base = problem.base_phi_fn()
  assert float(jax.jit(lambda y: orbifold.invariance_error(base, y))(xs)) < 1e-12
  raw_base = problems.pullback_phi0(problem.diffeo)  # F_raw^*φ0: torsion-free but not invariant
  assert float(jax.jit(lambda y: orbifold.invariance_error(raw_base, y))(xs)) > 1e-3
  assert float(jax.jit(lambda y: objective.torsion_statistics(base, y)["torsion"])(xs)) < 1e-20
  g = jax.jit(jax.vmap(lambda x: g2form.metric_from_phi(base(x))[0]))(xs)
  assert float(jnp.max(jnp.abs(g - jnp.eye(7)))) > 1e-3  # flat F^*δ, not constant in x


def test_learned_phi_is_closed_and_invariant_for_random_parameters(problem, xs):
  params = _random_params(problem)
  phi_fn = problem.phi_fn(params)
  stats = jax.jit(lambda y: objective.torsion_statistics(phi_fn, y))(xs)
  assert float(stats["closure"]) < 1e-20  # d(base + dη) = 0 identically
  assert float(stats["coclosure"]) > 1e-4
  assert float(jax.jit(lambda y: orbifold.invariance_error(phi_fn, y))(xs)) < 1e-12
  # The same network without the Γ-average: closed, but not a form on T⁷/Γ.
  d_raw = forms.exterior_derivative(
      lambda x: problem.beta_inv(x) + problem.eta_net.apply(params, x), 2)
  base = problem.base_phi_fn()
  raw_err = jax.jit(lambda y: orbifold.invariance_error(lambda x: base(x) + d_raw(x), y))(xs)
  assert float(raw_err) > 1e-2


def test_orbifold_topology_comes_from_the_group(problem):
  assert problem.betti_numbers == {2: 0, 3: 7}
  assert problem.symmetrise is joyce.average_forms
  assert orbifold.plane_is_invariant((0, 1, 2)) and not orbifold.plane_is_invariant((0, 1, 3))
  # the invariant coordinate 3-planes are exactly the 7 terms of φ0
  terms = [forms.combinations(3)[i] for i in np.flatnonzero(np.asarray(g2form.phi0()))]
  assert sorted(tuple(int(v) for v in t) for t in terms) == joyce.invariant_constant_forms(3)


def test_averaged_linear_skip_cannot_read_off_the_answer(problem):
  r = orbifold.linear_readout(problem, max_frequency=1, n_points=256, n_held=16)
  assert r["torsion_background"] > 1e-3
  assert r["eta_fraction_captured"] < 0.05
  assert r["reduction"] < 2.0


@pytest.mark.parametrize("field,value,match", [
    ("problem.torus_background", "planted_low_frequency", "torus_background='planted_low_freq"),
    ("train.train_harmonic", True, "train_harmonic=True is invalid for problem.name='orbifold'"),
    ("problem.calibration_plane", (0, 1, 3), r"calibration_plane=\(0, 1, 3\) is invalid for"),
    ("problem.background_min_l1", 1, "background_min_l1=1 is invalid"),
])
def test_bad_orbifold_configs_give_one_line_errors(tmp_path, field, value, match):
  c = g2_config.get_config("orbifold_tiny")
  section, key = field.split(".")
  c[section][key] = value
  with pytest.raises(ConfigError, match=match) as err:
    train.train_and_evaluate(c, str(tmp_path))
  assert "\n" not in str(err.value)
