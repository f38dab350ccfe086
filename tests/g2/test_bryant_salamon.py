"""Bryant-Salamon learning problem: symmetry of the torsion, the exact-boundary Chebyshev profile,
and a short float64 Adam + L-BFGS run that recovers the exact profiles."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import g2 as g2_config
from g2 import model, objective, problems, train


def test_torsion_of_the_ansatz_depends_on_r_only(x64):
  """SU(2) x SU(2) invariance: |dphi|^2_g, |dpsi|^2_g at fixed r agree for any Euler angles,
  for profiles far from torsion-free (so sampling fixed angles loses nothing)."""
  del x64

  def phi_fn(x):
    a_prof, b, c = problems.bryant_salamon_exact_profiles(x[0], 1.0)
    return problems.bryant_salamon_phi(x, a_prof, b * (1 + 0.1 * jnp.sin(3 * x[0])),
                                       c * (1 + 0.05 * x[0]))

  rng = np.random.default_rng(0)
  for r in (1.3, 2.7):
    pts = np.concatenate([np.full((4, 1), r), rng.uniform(0.3, 2.8, (4, 6))], axis=1)
    t = jax.jit(jax.vmap(lambda x: objective.training_geometry(phi_fn, x)))(jnp.asarray(pts))
    dphi, dpsi = np.asarray(t["dphi_sq"]), np.asarray(t["dpsi_sq"])
    assert dphi[0] > 1e-2 and dpsi[0] > 1e-2  # really torsioned
    np.testing.assert_allclose(dphi, dphi[0], rtol=1e-11)
    np.testing.assert_allclose(dpsi, dpsi[0], rtol=1e-11)
    # ... while the volume form does depend on the angles (sin theta factors)
    s = np.asarray(t["sqrt_det_g"])
    assert np.ptp(s) > 0.05 * np.mean(s)


def test_chebyshev_integral_profile_vanishes_at_r_min_and_differentiates_to_the_series(x64):
  del x64
  net = model.ChebyshevIntegralProfile(degree=6, r_min=1.2, r_max=4.0, n_out=2,
                                       param_dtype=jnp.float64)
  coefs = np.random.default_rng(1).normal(size=(6, 2))
  params = {"params": {"coefs": jnp.asarray(coefs)}}
  assert np.abs(np.asarray(net.apply(params, jnp.asarray(1.2)))).max() < 1e-14
  for r in (1.2, 2.5, 4.0):
    du = jax.jacfwd(lambda s: net.apply(params, s))(jnp.asarray(r))
    t = (r - 1.2) / 1.4 - 1.0
    np.testing.assert_allclose(np.asarray(du), np.polynomial.chebyshev.chebval(t, coefs),
                               rtol=1e-12)


def _short_config():
  c = g2_config.get_config("bryant_salamon_quick")
  c.train.num_steps = 80
  c.train.lbfgs_steps = 60
  c.curriculum.phase_ends = (0.05, 0.1, 0.15, 0.2, 1.0)
  c.model.profile_degree = 16
  c.optim.warmup_steps = 10
  c.train.batch_size = 64
  c.train.eval_every = 80
  c.train.checkpoint_every = 80
  c.train.eval_batch_size = 128
  c.validation.curvature = False  # nested third derivatives: covered by the core tests
  return c


@pytest.mark.slow
def test_short_run_recovers_the_exact_profiles(tmp_path):
  """Adam (20 steps, curriculum phases 1-4) then 60 L-BFGS steps: B^2 and C^2 within 1e-3 of
  r^2 F / 9 and r^2 / 12, held-out (random-angle) torsion cut by > 1e6, all in float64."""
  report = train.train_and_evaluate(_short_config(), str(tmp_path))
  bs = report["bryant_salamon"]
  assert bs["bs_rel_err_B2"] < 1e-3 and bs["bs_rel_err_C2"] < 1e-3, bs
  t = report["torsion"]
  assert t["normalised_torsion_after"] < 1e-6 * t["normalised_torsion_before"], t


def test_lbfgs_state_is_checkpointable_before_and_after_the_switch(tmp_path):
  """A checkpoint of the Adam phase (L-BFGS state still initial) must be restorable: the
  checkpointer rejects non-finite leaves, and optax's line search starts with value = inf.
  (A resumed mid-L-BFGS run was checked by hand to reproduce the uninterrupted one exactly.)"""
  from common import checkpoint as checkpoint_lib, loop
  with jax.enable_x64(True):
    learner = train.Learner(_short_config())
    state = learner.init_state()
    # as after >= 1 scheduler window (the initial 'previous window' statistic is NaN)
    state = state.replace(sched=state.sched._replace(
        prev_mean_log=jnp.zeros_like(state.sched.prev_mean_log)))
    assert all(bool(jnp.all(jnp.isfinite(v))) for v in jax.tree.leaves(state.lbfgs))
    ckpt = checkpoint_lib.Checkpointer(str(tmp_path), save_every=1, keep_latest=1)
    ckpt.save(learner.adam_steps, state, metrics={}, meta={"step": learner.adam_steps}, force=True)
    ckpt.close()
    ckpt = checkpoint_lib.Checkpointer(str(tmp_path), save_every=1, keep_latest=1)
    restored, _, start = loop.restore_or_init(ckpt, learner.init_state, mesh=learner.mesh)
    ckpt.close()
  assert start == learner.adam_steps == 20
  assert restored.params["phi"]["params"]["coefs"].dtype == jnp.float64
  assert learner.step_fn_at(start) == learner.lbfgs_step
  assert learner.step_fn_at(start - 1) == learner.train_step


@pytest.mark.parametrize("kind", ["chebyshev", "mlp"])
def test_boundary_data_are_exact_for_any_parameters(kind):
  c = g2_config.get_config("bryant_salamon_quick")
  c.model.profile_kind = kind
  c.train.float64 = False
  problem = problems.BryantSalamonProblem(c)
  params = problem.init_params(jax.random.PRNGKey(0))
  params = jax.tree.map(  # random, non-zero parameters
      lambda p: jax.random.normal(jax.random.PRNGKey(1), p.shape, p.dtype), params)
  b, cc = problem.profiles(params, jnp.asarray([problem.r_min, 2.0, problem.r_max], jnp.float32))
  _, b0, c0 = problems.bryant_salamon_exact_profiles(problem.r_min, problem.a)
  np.testing.assert_allclose([float(b[0]), float(cc[0])], [b0, c0], rtol=1e-6)
  assert abs(float(b[1]) - b0) > 1e-3  # not constant: the parameters do act away from r_min
  assert float(problem.extra_losses(params, None, None)["boundary"]) < 1e-12
