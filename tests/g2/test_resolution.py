"""Joyce's resolution M_t of T⁷/Γ: the atlas of 48 tubes, the glued closed φ_t (Γ-invariant,
torsion-free where it is pure Eguchi–Hanson or pure φ0) and ‖dψ_t‖ ∝ t⁴ (float64)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from g2 import eguchi_hanson as eh
from g2 import forms
from g2 import g2form
from g2 import joyce
from g2 import resolution as res
from g2 import resolution_learning as rl

pytestmark = pytest.mark.usefixtures("x64")


def test_charts_are_adapted_disjoint_and_fixed():
  cs = res.charts()
  assert len(cs) == 48 and sorted(np.bincount([c.orbit for c in cs])) == [4] * 12
  phi0 = np.asarray(g2form.phi0())
  elems = {g.name: g for g in joyce.group()}
  flip_u = np.diag([1.0, 1, 1, -1, -1, -1, -1])
  for c in cs:
    g = elems[c.element]
    np.testing.assert_allclose(np.asarray(g2form.pullback(phi0, c.frame)), phi0, atol=1e-14)
    # y-directions span the torus (free coordinates), u-directions its normal (fixed ones).
    assert set(np.nonzero(c.frame[:, :3])[0]) == set(range(7)) - set(c.fixed)
    np.testing.assert_allclose(np.mod(g.apply(c.centre / res.TWO_PI) * res.TWO_PI, res.TWO_PI),
                               c.centre, atol=1e-12)            # centre lies on Fix(g)
    np.testing.assert_array_equal(g.matrix @ c.frame, c.frame @ flip_u)   # g = (y, −u)
  assert res.min_torus_distance(cs) == pytest.approx(np.pi / 2)
  # The search rejects frames that do not carry φ0 to the EH convention: 192 of 18 432 survive.
  assert len(res.adapted_frames(tuple(i for i in range(7) if i not in cs[0].fixed))) == 192


def test_potential_difference_is_stable_and_matches_eh():
  t = 0.3
  v = np.asarray([0.05, 0.3, 1.0])
  direct = np.asarray([eh.kahler_potential(t)(np.asarray([np.sqrt(x), 0, 0, 0])) for x in v]) - v
  np.testing.assert_allclose(np.asarray(res.potential_difference(t)(jnp.asarray(v))), direct,
                             rtol=1e-12)
  big = jnp.asarray([1e4])      # D_t = −t⁴/(2v) + O(t⁸/v³): the naive form loses every digit
  np.testing.assert_allclose(np.asarray(res.potential_difference(t)(big)), -t ** 4 / 2e4, rtol=1e-6)


@pytest.fixture(scope="module")
def glued():
  return res.GluedForm(0.1)


def test_glued_form_is_closed_invariant_and_torsion_free_off_the_annulus(glued):
  # 16 radii (the shape the scaling test's quadrature uses: one compilation for the module).
  r = np.concatenate([[0.1, 0.3], np.linspace(0.4, 0.6, 13), [0.75]])
  prof = glued.torsion_profile(r)
  assert np.all(prof["dphi_sq"] < 1e-26)                          # closed by construction
  assert np.all(prof["dpsi_sq"][:2] < 1e-25)                      # pure Eguchi–Hanson
  ann = prof["dpsi_sq"][2:15]
  assert np.all(ann > 1e-8) and ann.max() > 1e-3                 # the annulus carries torsion
  assert prof["dpsi_sq"][15] == 0.0                               # pure φ0
  other = glued.torsion_profile(r, direction=[1.0, -2, 0.5, 3], chart_index=29, y=[1, 2, 3])
  np.testing.assert_allclose(other["dpsi_sq"][2:15], prof["dpsi_sq"][2:15], rtol=1e-9)  # radial, every tube
  # Γ-invariance at points in several tubes; the EH core differs from φ0 by O(1).
  rng = np.random.default_rng(1)
  cs = res.charts()
  xs = jnp.asarray(np.stack([glued.chart_point(cs[i], rng.uniform(0, 6, 3), 0.12 * rng.normal(size=4))
                             for i in rng.integers(48, size=24)]))
  # g^*φ(x) = φ(g x) · (component signs of g's linear part): one vmap of φ over all g x.
  signs, shifts, comp = joyce._group_arrays(3)  # pylint: disable=protected-access
  gx = (np.asarray(xs)[None] * signs[:, None] + shifts[:, None]).reshape(-1, 7)
  vals = np.asarray(jax.jit(jax.vmap(glued.phi_fn()))(jnp.asarray(gx))).reshape(8, len(xs), 35)
  pulled = vals * comp[:, None, :]
  assert np.abs(pulled[0] - np.asarray(g2form.phi0())).max() > 0.1  # the EH core is not φ0
  np.testing.assert_allclose(pulled, np.broadcast_to(pulled[:1], pulled.shape), atol=1e-12)


def test_torsion_scales_like_t_to_the_fourth():
  out = res.torsion_scaling(ts=(0.02, 0.04, 0.08), n_radial=16)
  assert out["exponent_l2"] == pytest.approx(4.0, abs=0.05)
  assert out["exponent_sup"] == pytest.approx(4.0, abs=0.1)
  assert all(r["dphi_sup"] < 1e-14 for r in out["rows"])
  assert out["rows"][0]["volume"] == pytest.approx((2 * np.pi) ** 7 / 8, rel=1e-6)


def test_tubes_must_be_disjoint():
  with pytest.raises(ValueError, match="r_outer=0.8 is invalid"):
    res.GluedForm(0.1, 0.3, 0.8)


def test_importance_sampling_reproduces_the_radial_quadrature():
  # The Monte Carlo estimator the learner trains on (tube points + uniform points, weighted by
  # uniform/mixture density) must agree with the exact radial integral at η = 0.
  learner = rl.ResolutionLearner(0.16)
  x, w = learner.sample(np.random.default_rng(3), 2048)
  assert np.mean(w) == pytest.approx(1.0, abs=0.05)
  tor = res._torsion_batch(0.35, 0.7)(jnp.asarray(x), jnp.asarray(0.16))  # pylint: disable=protected-access
  num = w * np.asarray(tor["dpsi_sq"] + tor["dphi_sq"]) * np.asarray(tor["sqrt_det_g"])
  den = w * np.asarray(tor["sqrt_det_g"])
  est = num.mean() / den.mean() * den.mean() ** (2 / 7)
  se = np.std(num - est * den, ddof=1) / np.sqrt(len(num))
  exact = res.GluedForm(0.16).norms(16)["normalised_torsion"]
  assert abs(est - exact) < 4 * se and se < 0.15 * exact


def test_learned_correction_is_gamma_invariant_and_closed():
  learner = rl.ResolutionLearner(0.1, width=8, depth=1, local_width=8, local_depth=1)
  params = learner.init_params(jax.random.PRNGKey(0))
  leaves, tree = jax.tree.flatten(params)
  keys = jax.random.split(jax.random.PRNGKey(1), len(leaves))
  params = jax.tree.unflatten(tree, [l + 0.3 * jax.random.normal(k, l.shape)
                                     for l, k in zip(leaves, keys)])
  rng = np.random.default_rng(2)
  x, _ = learner.sample(rng, 12)
  signs, shifts, comp = joyce._group_arrays(2)  # pylint: disable=protected-access
  gx = (x[None] * signs[:, None] + shifts[:, None]).reshape(-1, 7)
  eta = np.asarray(jax.jit(jax.vmap(learner.eta_fn(params)))(jnp.asarray(gx))).reshape(8, -1, 21)
  pulled = eta * comp[:, None, :]
  assert np.abs(pulled[0]).max() > 1e-2                     # a non-trivial η, also in the tubes
  np.testing.assert_allclose(pulled, np.broadcast_to(pulled[:1], pulled.shape), atol=1e-10)
  dphi = jax.jit(jax.vmap(forms.exterior_derivative(learner.phi_fn(params), 3)))(jnp.asarray(x[:4]))
  assert np.abs(np.asarray(dphi)).max() < 1e-9              # φ_t + dη stays closed
