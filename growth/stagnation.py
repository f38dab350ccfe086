"""Stagnation detector (host side, evaluated once per evaluation), optax-style init/update.

An evaluation is *stagnant* when all of
  * it is eligible: at least `warmup_steps` steps since the start (before the first growth) or
    `post_growth_freeze_steps` since the last growth, and >= 3 snapshots in the history;
  * tau >= tau_crit and kappa >= kappa_crit (the frontier block's mean stretch and curvature);
  * the relative validation-loss improvement since the previous evaluation,
    (prev - val) / |prev|, is below `threshold` (the README's rule; the original never used it).
Growth fires when `patience` consecutive evaluations are stagnant; the counter then resets.
"""
from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple


@dataclasses.dataclass(frozen=True)
class StagnationConfig:
  patience: int = 3
  threshold: float = 0.01
  warmup_steps: int = 100
  post_growth_freeze_steps: int = 100
  tau_crit: float = 2.0
  kappa_crit: float = 0.5
  min_snapshots: int = 3

  def __post_init__(self):
    for name in ("patience", "warmup_steps", "post_growth_freeze_steps", "min_snapshots"):
      v = getattr(self, name)
      ok = isinstance(v, int) and v >= (1 if name == "patience" else 0)
      if not ok:
        lo = 1 if name == "patience" else 0
        raise ValueError(f"config.growth.{name}={v!r} is invalid: allowed an int >= {lo}")
    for name in ("threshold", "tau_crit", "kappa_crit"):
      v = getattr(self, name)
      if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
        raise ValueError(f"config.growth.{name}={v!r} is invalid: allowed a finite number >= 0")


class StagnationState(NamedTuple):
  counter: int = 0                 # consecutive stagnant evaluations
  prev_val_loss: float | None = None
  last_growth_step: int | None = None

  def to_json(self) -> dict:
    return self._asdict()

  @classmethod
  def from_json(cls, d: dict) -> "StagnationState":
    return cls(**d)


def init() -> StagnationState:
  return StagnationState()


def update(state: StagnationState, cfg: StagnationConfig, *, step: int, tau: float, kappa: float,
           val_loss: float, num_snapshots: int) -> tuple[StagnationState, bool, dict]:
  """One evaluation. Returns (new state, fire, info) with info's per-evaluation diagnostics."""
  if state.last_growth_step is None:
    eligible = step >= cfg.warmup_steps
  else:
    eligible = step - state.last_growth_step >= cfg.post_growth_freeze_steps
  eligible = eligible and num_snapshots >= cfg.min_snapshots
  prev = state.prev_val_loss
  rel = math.inf if prev is None else (prev - val_loss) / max(abs(prev), 1e-12)
  stagnant = (eligible and tau >= cfg.tau_crit and kappa >= cfg.kappa_crit
              and rel < cfg.threshold)
  counter = state.counter + 1 if stagnant else 0
  fire = counter >= cfg.patience
  new = StagnationState(counter=0 if fire else counter, prev_val_loss=float(val_loss),
                        last_growth_step=step if fire else state.last_growth_step)
  info = {"stagnation/tau": float(tau), "stagnation/kappa": float(kappa),
          "stagnation/rel_improvement": rel if math.isfinite(rel) else 0.0,
          "stagnation/counter": float(counter), "stagnation/eligible": float(eligible)}
  return new, fire, info


def note_growth(state: StagnationState, step: int) -> StagnationState:
  """Records a growth that did not come from the detector (fixed schedule)."""
  return state._replace(counter=0, last_growth_step=step)
