"""Stagnation detector: fires at exactly the expected evaluation on synthetic trajectories."""
import numpy as np
import pytest

from growth import geometry
from growth import stagnation

CFG = stagnation.StagnationConfig(patience=2, threshold=0.01, warmup_steps=30,
                                  post_growth_freeze_steps=20, tau_crit=1.3, kappa_crit=0.5)


def _history(kind, s=5):
  """A frontier trajectory: 'line' (tau=1, kappa=0) or 'zigzag' (tau=sqrt2, kappa=1)."""
  steps = [[1.0, 1.0] if (kind == "line" or t % 2 == 0) else [1.0, -1.0] for t in range(s - 1)]
  return np.concatenate([np.zeros((1, 2)), np.cumsum(steps, axis=0)])


def _run(evals, cfg=CFG):
  """evals: list of (step, trajectory kind, val loss). Returns the steps where growth fired."""
  state, fired, infos = stagnation.init(), [], []
  for step, kind, val in evals:
    h = _history(kind)
    tau = float(geometry.temporal_stretch_factor(h))
    kappa = float(geometry.effective_curvature(h))
    state, fire, info = stagnation.update(state, cfg, step=step, tau=tau, kappa=kappa,
                                          val_loss=val, num_snapshots=6)
    infos.append(info)
    if fire:
      fired.append(step)
  return fired, infos


def test_fires_at_exactly_the_expected_evaluation():
  evals = [(10, "zigzag", 3.0), (20, "zigzag", 2.999),   # before warmup (30): not eligible
           (30, "line", 2.998),                           # straight: tau = 1 < 1.3
           (40, "zigzag", 2.5),                           # curvy but improving 16% > 1%
           (50, "zigzag", 2.499),                         # stagnant #1
           (60, "zigzag", 2.498),                         # stagnant #2 -> fire
           (70, "zigzag", 2.497),                         # within post-growth freeze (20)
           (80, "zigzag", 2.496),                         # stagnant #1 after growth
           (90, "line", 2.495),                           # reset
           (100, "zigzag", 2.494),                        # #1
           (110, "zigzag", 2.493)]                        # #2 -> fire
  fired, infos = _run(evals)
  assert fired == [60, 110]
  assert [i["stagnation/counter"] for i in infos] == [0, 0, 0, 0, 1, 2, 0, 1, 0, 1, 2]
  assert infos[4]["stagnation/tau"] == pytest.approx(np.sqrt(2))
  assert infos[4]["stagnation/kappa"] == pytest.approx(1.0)


def test_threshold_is_used():
  # Same geometry, but the loss keeps improving by 5% per evaluation: never stagnant.
  evals = [(10 * i, "zigzag", 3.0 * 0.95 ** i) for i in range(3, 12)]
  fired, _ = _run(evals)
  assert fired == []
  loose = stagnation.StagnationConfig(patience=2, threshold=0.1, warmup_steps=30,
                                      post_growth_freeze_steps=20, tau_crit=1.3, kappa_crit=0.5)
  fired, _ = _run(evals, loose)
  assert fired == [50, 80, 110]


def test_bad_config():
  with pytest.raises(ValueError, match="patience=-1"):
    stagnation.StagnationConfig(patience=-1)
  with pytest.raises(ValueError, match="threshold=nan"):
    stagnation.StagnationConfig(threshold=float("nan"))
