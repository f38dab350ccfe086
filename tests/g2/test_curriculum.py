"""Curriculum table and the bounded adaptive loss scheduler."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from common.config_validation import ConfigError
from configs import g2 as g2_config
from g2 import curriculum as cur


def _adaptive(mode="bounded", **kw):
  cfg = g2_config.get_config("default").adaptive
  cfg.mode = mode
  for k, v in kw.items():
    setattr(cfg, k, v)
  return cur.adaptive_config_from(cfg)


def _run(cfg, losses_fn, steps):
  state = cur.adaptive_init()
  update = jax.jit(lambda s, l, t: cur.adaptive_update(s, l, t, cfg))
  history = []
  for t in range(steps):
    state = update(state, losses_fn(t), jnp.asarray(t))
    history.append(np.asarray(state.multipliers))
  return state, np.stack(history)


def test_phase_table_defaults_are_the_originals():
  c = cur.curriculum_from_config(g2_config.get_config("default").curriculum, 15000)
  assert c.ends == (2000, 5000, 8000, 10000, 15000)
  assert c.grid_n == (8, 8, 10, 10, 12)
  col = cur.LOSS_TERMS.index("coclosure")
  np.testing.assert_allclose(c.weights[:, col], [0.5, 1.0, 2.0, 3.0, 5.0])
  assert [c.phase_of_host(s) for s in (0, 1999, 2000, 7999, 8000, 14999, 15000)] == \
      [0, 0, 1, 2, 3, 4, 4]
  assert int(c.phase_of(jnp.asarray(9999))) == 3
  assert c.events()[0] == (2000, "torsion_descent")


def test_bounded_scheduler_never_exceeds_cap_on_a_permanent_plateau():
  cfg = _adaptive(start_step=0, interval=10, factor=1.5, cap=4.0)
  # Constant losses: every window is a plateau, so the adapted terms are boosted until the cap.
  state, hist = _run(cfg, lambda t: jnp.full((len(cur.LOSS_TERMS),), 1e-6), 400)
  adapted = np.asarray(cfg.adapted)
  assert hist.max() <= 4.0 + 1e-6
  np.testing.assert_allclose(np.asarray(state.multipliers)[adapted], 4.0)
  np.testing.assert_allclose(np.asarray(state.multipliers)[~adapted], 1.0)


def test_legacy_scheduler_is_unbounded_like_the_original():
  cfg = _adaptive(mode="legacy", start_step=0, interval=10, factor=1.5)
  state, _ = _run(cfg, lambda t: jnp.full((len(cur.LOSS_TERMS),), 1e-6), 400)
  assert np.asarray(state.multipliers).max() > 1e5  # 1.5^39: what drove the original to 1e17


def test_bounded_scheduler_leaves_improving_losses_alone():
  cfg = _adaptive(start_step=0, interval=10, plateau_tol=0.01)
  # Loss falls by a decade every 50 steps: 0.2 decades per window, well above the tolerance.
  state, hist = _run(cfg, lambda t: jnp.full((len(cur.LOSS_TERMS),), 10.0 ** (-t / 50)), 300)
  np.testing.assert_allclose(hist, 1.0)


def test_first_window_never_boosts_and_state_is_always_finite():
  """No previous window yet => no plateau; the state stays finite (a non-finite train state is never
  checkpointed, so a NaN marker made every checkpoint before the first window end unsaveable)."""
  cfg = _adaptive(start_step=0, interval=10, factor=1.5, cap=4.0)
  state = cur.adaptive_init()
  assert all(np.isfinite(np.asarray(leaf)).all() for leaf in jax.tree_util.tree_leaves(state))
  state, hist = _run(cfg, lambda t: jnp.full((len(cur.LOSS_TERMS),), 1e-6), 10)
  np.testing.assert_allclose(hist, 1.0)  # the first window ends at step 9 with no comparison
  assert all(np.isfinite(np.asarray(leaf)).all() for leaf in jax.tree_util.tree_leaves(state))
  _, hist = _run(cfg, lambda t: jnp.full((len(cur.LOSS_TERMS),), 1e-6), 20)
  assert hist[-1].max() == 1.5  # the second, flat window is a plateau: one boost


def test_scheduler_respects_start_step():
  cfg = _adaptive(start_step=100, interval=10, cap=10.0)
  _, hist = _run(cfg, lambda t: jnp.full((len(cur.LOSS_TERMS),), 1.0), 130)
  assert np.all(hist[:100] == 1.0) and hist[-1].max() > 1.0


@pytest.mark.parametrize("field,value", [("phase_ends", (0.5, 0.4, 0.6, 0.8, 1.0)),
                                         ("coclosure", (1.0, -1.0, 1.0, 1.0, 1.0)),
                                         ("grid_n", (8, 8))])
def test_bad_curriculum_gives_a_clear_error(field, value):
  cfg = g2_config.get_config("default").curriculum
  setattr(cfg, field, value)
  with pytest.raises(ConfigError, match=f"config.curriculum.{field}"):
    cur.curriculum_from_config(cfg, 100)


def test_bad_adaptive_mode_and_unknown_variant():
  with pytest.raises(ConfigError, match="config.adaptive.mode"):
    _adaptive(mode="exponential")
  with pytest.raises(ValueError, match="variant 'nope'"):
    g2_config.get_config("nope")


@pytest.mark.parametrize("variant", g2_config.VARIANTS)
def test_phase_names_say_what_each_phase_does_for_the_problem(variant):
  # No neck / ACyl labels: these problems have neither (the original's "neck" was a sigmoid
  # whose weight is identically zero). Bryant-Salamon's last phase is where L-BFGS runs.
  c = g2_config.get_config(variant)
  names = c.curriculum.phase_names
  assert not any(("neck" in n or "acyl" in n) for n in names), names
  if c.problem.name == "bryant_salamon":
    assert names[-1].endswith("lbfgs_polish") and c.train.lbfgs_steps > 0
    ends = cur.curriculum_from_config(c.curriculum, c.train.num_steps).ends
    adam_steps = c.train.num_steps - c.train.lbfgs_steps
    assert adam_steps >= ends[-2]  # L-BFGS runs in the last phase ...
    assert names[-1].startswith("adam_then") == (adam_steps > ends[-2])  # ... after Adam if so
  else:
    grids = c.curriculum.grid_n
    assert names[2].startswith(f"grid_{grids[2]}") and names[4].startswith(f"grid_{grids[4]}")
