"""Ground truths of the trajectory geometry (float64)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from growth import geometry as geo


@pytest.fixture(autouse=True, scope="module")
def _x64():
  prev = jax.config.jax_enable_x64
  jax.config.update("jax_enable_x64", True)
  yield
  jax.config.update("jax_enable_x64", prev)


def _path(steps, start=None):
  steps = np.asarray(steps, np.float64)
  start = np.zeros(steps.shape[1:]) if start is None else start
  return np.concatenate([start[None], start[None] + np.cumsum(steps, axis=0)])


def test_straight_line_tau_one_kappa_zero():
  h = _path([[1.0, 2.0]] * 6)
  assert float(geo.temporal_stretch_factor(h, eps=0)) == pytest.approx(1.0, abs=1e-12)
  assert float(geo.effective_curvature(h, eps=0)) == pytest.approx(0.0, abs=1e-12)


def test_zigzag_tau_sqrt2_kappa_one():
  h = _path([[1, 1], [1, -1], [1, 1], [1, -1]])
  assert float(geo.temporal_stretch_factor(h, eps=0)) == pytest.approx(np.sqrt(2), abs=1e-12)
  assert float(geo.effective_curvature(h, eps=0)) == pytest.approx(1.0, abs=1e-12)


def test_back_and_forth_kappa_zero_tau_T():
  v = np.array([[0.3, -1.0, 2.0], [1.0, 0.0, 0.5]])  # a 2-D tensor moving +-v
  steps = [v, -v, v, -v, v]  # T = 5 (odd) steps: net displacement = v
  h = _path(steps)
  assert float(geo.temporal_stretch_factor(h, eps=0)) == pytest.approx(5.0, abs=1e-12)
  assert float(geo.effective_curvature(h, eps=0)) == pytest.approx(0.0, abs=1e-12)


def test_short_histories():
  h = np.ones((1, 4))
  assert float(geo.temporal_stretch_factor(h)) == 1.0
  assert float(geo.effective_curvature(np.ones((2, 4)))) == 0.0
  new, m = geo.extrapolate(h, geo.ExtrapolationConfig(k_subspace=1))
  np.testing.assert_array_equal(new, h[-1])


def test_v_mean_is_delta_over_s_minus_1():
  rng = np.random.default_rng(0)
  h = rng.normal(size=(7, 5, 3))
  v = geo.velocities(h)
  np.testing.assert_allclose(v.mean(0), (h[-1] - h[0]).reshape(-1) / 6, atol=1e-14)
  # With beta only, raw directions and the full subspace, W_new = W_last + beta0/tau * v_mean.
  cfg = geo.ExtrapolationConfig(beta0=0.5, gamma0=0.0, eta0=0.0, k_subspace=6, ell_orth=0,
                                direction="legacy_raw")
  new, m = geo.extrapolate(h, cfg)
  expected = h[-1] + 0.5 / (float(m["tau"]) + cfg.eps) * (h[-1] - h[0]) / 6
  np.testing.assert_allclose(new, expected, atol=1e-12)


def test_gram_trick_equals_full_svd():
  rng = np.random.default_rng(1)
  v = rng.normal(size=(9, 300)) * np.linspace(3, 0.1, 9)[:, None]
  sigma, q = geo.trajectory_spectrum(jnp.asarray(v))
  _, s_ref, vt_ref = np.linalg.svd(v, full_matrices=False)
  np.testing.assert_allclose(sigma, s_ref, rtol=1e-10)
  # singular vectors agree up to sign
  signs = np.sign(np.sum(np.asarray(q) * vt_ref.T, axis=0))
  np.testing.assert_allclose(np.asarray(q) * signs, vt_ref.T, atol=1e-9)
  # centred variant equals the SVD of the centred matrix (rank drops by one)
  sigma_c, _ = geo.trajectory_spectrum(jnp.asarray(v), center=True)
  s_c = np.linalg.svd(v - v.mean(0), compute_uv=False)
  np.testing.assert_allclose(sigma_c[:8], s_c[:8], rtol=1e-8)
  assert float(sigma_c[8]) == 0.0


def test_escape_unit_norm_and_orthogonal_to_subspace():
  rng = np.random.default_rng(2)
  h = np.cumsum(rng.normal(size=(12, 16, 8)), axis=0)
  v = geo.velocities(h)
  sigma, q = geo.trajectory_spectrum(v)
  esc = geo.escape_vector(sigma, q, k=4, ell=3)
  assert float(jnp.linalg.norm(esc)) == pytest.approx(1.0, abs=1e-12)
  assert float(jnp.linalg.norm(q[:, :4].T @ esc)) < 1e-6
  # and it lies in the span of modes 4..6
  resid = esc - q[:, 4:7] @ (q[:, 4:7].T @ esc)
  assert float(jnp.linalg.norm(resid)) < 1e-9


@pytest.mark.parametrize("flip", [0, 3, 4, 5, 6])
def test_new_block_is_invariant_to_singular_vector_signs(flip, monkeypatch):
  # A singular vector's sign is arbitrary (the eigensolver picks one). Flip column `flip` of Q
  # (a top mode for 0 and 3, an escape mode for 4..6) and the new block must not move; the
  # original's raw sum of sigma_i q_i flips the escape contribution of a secondary mode.
  rng = np.random.default_rng(7)
  h = np.cumsum(rng.normal(size=(9, 6, 5)) + 0.3, axis=0)
  cfg = geo.ExtrapolationConfig(k_subspace=4, ell_orth=3, tau_crit=0.0, kappa_crit=0.0,
                                eta0=0.5)
  with jax.disable_jit():
    ref, m = geo.extrapolate(h, cfg)
    assert float(m["eta"]) > 0.1  # the escape term is on
    spectrum = geo.trajectory_spectrum

    def flipped(v, center=False):
      sigma, q = spectrum(v, center)
      return sigma, q.at[:, flip].multiply(-1.0)

    monkeypatch.setattr(geo, "trajectory_spectrum", flipped)
    new, _ = geo.extrapolate(h, cfg)
  np.testing.assert_allclose(new, ref, atol=1e-12)


def test_escape_modes_are_aligned_with_the_drift():
  rng = np.random.default_rng(8)
  h = np.cumsum(rng.normal(size=(10, 12)) + 0.2, axis=0)
  v = geo.velocities(h)
  sigma, q = geo.trajectory_spectrum(v)
  drift = h[-1] - h[0]
  q_al = geo.align_with_drift(q, drift)
  assert np.all(np.asarray(drift @ q_al) >= 0)
  np.testing.assert_allclose(np.abs(q_al), np.abs(q), atol=0)
  # flipping every column of Q leaves the aligned escape vector unchanged
  e1 = geo.escape_vector(sigma, q, 3, 3, drift=drift)
  e2 = geo.escape_vector(sigma, -q, 3, 3, drift=drift)
  np.testing.assert_allclose(e1, e2, atol=1e-12)


def test_coefficients_report_vs_legacy_code():
  cfg = geo.ExtrapolationConfig(beta0=0.1, gamma0=0.15, eta0=0.03, tau_crit=2.0, kappa_crit=0.5)
  b, g, e = geo.coefficients(3.0, 1.5, cfg)
  assert float(b) == pytest.approx(0.1 / 3.0) and float(g) == pytest.approx(0.06)
  assert float(e) == pytest.approx(0.03 * 1.0 * 1.0)
  assert float(geo.coefficients(1.5, 1.5, cfg)[2]) == 0.0  # below tau_crit: no escape
  legacy = geo.ExtrapolationConfig(eta_mode="legacy_code")
  assert float(geo.coefficients(1.5, 1.5, legacy)[2]) == pytest.approx(0.03 * 1.5 * 1.5)


def test_extrapolation_step_matches_formula():
  rng = np.random.default_rng(3)
  h = np.cumsum(rng.normal(size=(8, 6, 5)), axis=0)
  cfg = geo.ExtrapolationConfig(k_subspace=3, ell_orth=2, tau_crit=0.0, kappa_crit=0.0)
  new, m = geo.extrapolate(h, cfg)
  v = geo.velocities(h)
  sigma, q = geo.trajectory_spectrum(v)
  qk = q[:, :3]
  vu = qk @ (qk.T @ v.mean(0))
  au = qk @ (qk.T @ (v[-1] - v[0]) / 6)
  esc = geo.escape_vector(sigma, q, 3, 2, drift=(h[-1] - h[0]).reshape(-1))
  step = (m["beta"] * vu / jnp.linalg.norm(vu) + m["gamma"] * au / jnp.linalg.norm(au)
          + m["eta"] * esc)
  np.testing.assert_allclose(new, h[-1] + np.asarray(step).reshape(6, 5), atol=1e-12)
  assert float(m["eta"]) > 0 and float(m["rank"]) == 7.0


def test_centred_svd_can_drop_the_trend_uncentred_keeps_it():
  # Velocities = a constant drift d plus noise along two other axes: the drift is the mean,
  # so centring removes it from the top of the spectrum (legacy); the default keeps it.
  d = np.zeros(50); d[0] = 1.0
  rng = np.random.default_rng(4)
  noise = np.zeros((10, 50)); noise[:, 1] = rng.normal(size=10) * 3; noise[:, 2] = rng.normal(size=10) * 3
  h = _path(d[None] + noise)
  base = dict(beta0=1.0, gamma0=0.0, eta0=0.0, k_subspace=1, ell_orth=0, direction="legacy_raw")
  new_ok, _ = geo.extrapolate(h, geo.ExtrapolationConfig(**base))
  new_legacy, _ = geo.extrapolate(h, geo.ExtrapolationConfig(**base, svd_center=True))
  drift_ok = float((new_ok - h[-1])[0])
  drift_legacy = float((new_legacy - h[-1])[0])
  assert abs(drift_legacy) < 0.2 * abs(drift_ok)


def test_one_d_uniform_vs_legacy():
  rng = np.random.default_rng(5)
  h = np.cumsum(rng.normal(size=(8, 10)), axis=0)
  base = dict(k_subspace=2, ell_orth=2, tau_crit=0.0, kappa_crit=0.0, direction="legacy_raw")
  new_legacy, _ = geo.extrapolate(h, geo.ExtrapolationConfig(**base, one_d="legacy"))
  new_uni, m = geo.extrapolate(h, geo.ExtrapolationConfig(**base))
  v = np.diff(h, axis=0)
  exp = h[-1] + m["beta"] * v.mean(0) + m["gamma"] * (v[-1] - v[0]) / 6
  np.testing.assert_allclose(new_legacy, exp, atol=1e-12)
  assert float(jnp.abs(new_uni - new_legacy).max()) > 1e-3  # projection + escape differ


def test_bad_config_errors():
  with pytest.raises(ValueError, match="eta_mode='nope'"):
    geo.ExtrapolationConfig(eta_mode="nope")
  with pytest.raises(ValueError, match="k_subspace=8 is invalid"):
    geo.ExtrapolationConfig(k_subspace=8).check_history_size(8)
  geo.ExtrapolationConfig(k_subspace=6).check_history_size(8)


def test_snapshot_history_rolls_and_pytree_metrics():
  hist = geo.snapshot_history(4)
  params = {"w": jnp.zeros((2, 3)), "b": jnp.zeros(3)}
  state = hist.init(params)
  update = jax.jit(hist.update)
  for t in range(6):
    state = update(jax.tree.map(lambda p: p + t, params), state)
  assert int(state.count) == 4
  view = geo.history_view(state)
  np.testing.assert_array_equal(view["b"][:, 0], [2, 3, 4, 5])
  tau, kappa = geo.tree_stretch_and_curvature(view)
  assert tau == pytest.approx(1.0) and kappa == pytest.approx(0.0, abs=1e-6)
  new, m = geo.extrapolate_tree(view, geo.ExtrapolationConfig(k_subspace=1, ell_orth=1,
                                                              direction="legacy_raw"))
  # straight line: W_new = W_last + beta0/tau * v_mean (v_mean = 1), no curvature, no escape
  np.testing.assert_allclose(new["w"], 5 + 0.1, atol=1e-6)
  assert m["tau"] == pytest.approx(1.0)
