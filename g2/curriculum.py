"""Five-phase curriculum (per-phase loss weights and sample grids) and a bounded adaptive scheduler.

The phase table is configuration (the original's table, reference §1.4). The scheduler is written
the optax way: `adaptive_init` / `adaptive_update` are pure functions of a NamedTuple state, so
it lives inside the jitted train step and inside checkpoints (a resumed run continues with the
same multipliers and the same phase).

Bounded mode (default): every `interval` steps after `start_step`, the mean log10 loss of each
adapted term over the last window is compared with the previous window; if it improved by less
than `plateau_tol` the term's multiplier is multiplied by `factor`, never above `cap`.
Legacy mode reproduces the original: boost by `factor` whenever var(raw loss over the window) <
`legacy_var_threshold`, without a cap (this is what drove the original's weights to ~1e17).
"""
from __future__ import annotations

import dataclasses
from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from common.config_validation import ConfigError

LOSS_TERMS = ("closure", "coclosure", "volume", "gram_h2", "gram_h3", "boundary", "neck_smooth",
              "harm_pen", "calibration")
ADAPTIVE_MODES = ("bounded", "legacy", "off")


@dataclasses.dataclass(frozen=True)
class Curriculum:
  """Phase table: `weights[phase, term]` over LOSS_TERMS; phase p covers steps < ends[p]."""
  names: tuple[str, ...]
  ends: tuple[int, ...]  # absolute end step of each phase (last = num_steps)
  grid_n: tuple[int, ...]
  weights: np.ndarray  # [n_phases, len(LOSS_TERMS)]

  def phase_of(self, step) -> jax.Array:
    """Phase index of a step (works on traced and Python ints)."""
    return jnp.minimum(jnp.searchsorted(jnp.asarray(self.ends), step, side="right"),
                       len(self.ends) - 1)

  def phase_of_host(self, step: int) -> int:
    return int(min(np.searchsorted(np.asarray(self.ends), step, side="right"), len(self.ends) - 1))

  def weights_at(self, step) -> jax.Array:
    return jnp.asarray(self.weights, jnp.float32)[self.phase_of(step)]

  def events(self) -> list[tuple[int, str]]:
    """(start step, name) of every phase after the first (for dashboards)."""
    return [(int(self.ends[i - 1]), self.names[i]) for i in range(1, len(self.ends))]


def curriculum_from_config(cfg, num_steps: int) -> Curriculum:
  """Builds the table from `config.curriculum`; validates shapes and values."""
  n = len(cfg.phase_names)
  fields = {"phase_ends": cfg.phase_ends, "grid_n": cfg.grid_n,
            **{t: getattr(cfg, t) for t in LOSS_TERMS}}
  for name, vals in fields.items():
    if len(vals) != n:
      raise ConfigError(f"config.curriculum.{name}={tuple(vals)!r} is invalid: allowed a tuple of "
                       f"{n} values (one per phase)")
  ends_f = np.asarray(cfg.phase_ends, np.float64)
  if np.any(np.diff(ends_f) <= 0) or ends_f[0] <= 0 or abs(ends_f[-1] - 1.0) > 1e-9:
    raise ConfigError(f"config.curriculum.phase_ends={tuple(cfg.phase_ends)!r} is invalid: allowed "
                     "increasing fractions in (0, 1] ending at 1.0")
  for t in LOSS_TERMS:
    if any((not np.isfinite(v)) or v < 0 for v in getattr(cfg, t)):
      raise ConfigError(f"config.curriculum.{t}={tuple(getattr(cfg, t))!r} is invalid: allowed "
                       "finite weights >= 0")
  if any(int(g) < 2 for g in cfg.grid_n):
    raise ConfigError(f"config.curriculum.grid_n={tuple(cfg.grid_n)!r} is invalid: allowed ints >= 2")
  ends = tuple(int(round(f * num_steps)) for f in ends_f)
  weights = np.stack([np.asarray(getattr(cfg, t), np.float64) for t in LOSS_TERMS], axis=1)
  return Curriculum(tuple(cfg.phase_names), ends, tuple(int(g) for g in cfg.grid_n), weights)


@dataclasses.dataclass(frozen=True)
class AdaptiveConfig:
  mode: str
  adapted: tuple[bool, ...]  # per LOSS_TERMS entry
  start_step: int
  interval: int
  factor: float
  plateau_tol: float
  cap: float
  legacy_var_threshold: float


def adaptive_config_from(cfg) -> AdaptiveConfig:
  if cfg.mode not in ADAPTIVE_MODES:
    raise ConfigError(f"config.adaptive.mode={cfg.mode!r} is invalid: allowed one of {ADAPTIVE_MODES}")
  unknown = [t for t in cfg.terms if t not in LOSS_TERMS]
  if unknown:
    raise ConfigError(f"config.adaptive.terms={tuple(cfg.terms)!r} is invalid: allowed names from "
                     f"{LOSS_TERMS}")
  if cfg.interval < 1 or cfg.factor < 1.0 or cfg.cap < 1.0 or cfg.start_step < 0:
    raise ConfigError(f"config.adaptive (interval={cfg.interval!r}, factor={cfg.factor!r}, cap="
                     f"{cfg.cap!r}, start_step={cfg.start_step!r}) is invalid: allowed interval >= 1, "
                     "factor >= 1, cap >= 1, start_step >= 0")
  return AdaptiveConfig(cfg.mode, tuple(t in cfg.terms for t in LOSS_TERMS), int(cfg.start_step),
                        int(cfg.interval), float(cfg.factor), float(cfg.plateau_tol),
                        float(cfg.cap), float(cfg.legacy_var_threshold))


class AdaptiveState(NamedTuple):
  multipliers: jax.Array  # [n_terms] current multiplier of each phase weight
  window_log: jax.Array  # [n_terms] sum of log10 loss over the current window
  window_sq: jax.Array  # [n_terms] sum of raw loss^2 over the current window (legacy test)
  window_raw: jax.Array  # [n_terms] sum of raw loss over the current window (legacy test)
  prev_mean_log: jax.Array  # [n_terms] mean log10 loss of the previous window (NO_PREVIOUS_WINDOW: none yet)
  count: jax.Array  # [] steps accumulated in the current window


# Finite "no previous window" marker: every improvement measured against it is huge, so the first
# window never boosts. (A NaN marker made the whole train state non-finite until the first window
# ended, and the checkpointer refuses non-finite states: a run preempted then restarted from 0.)
NO_PREVIOUS_WINDOW = 1e30


def adaptive_init(n_terms: int = len(LOSS_TERMS)) -> AdaptiveState:
  z = lambda: jnp.zeros((n_terms,), jnp.float32)  # noqa: E731  (distinct buffers: donation)
  return AdaptiveState(jnp.ones((n_terms,), jnp.float32), z(), z(), z(),
                       jnp.full((n_terms,), NO_PREVIOUS_WINDOW, jnp.float32),
                       jnp.zeros((), jnp.int32))


def adaptive_update(state: AdaptiveState, losses: jax.Array, step: jax.Array,
                    cfg: AdaptiveConfig) -> AdaptiveState:
  """Accumulates this step's per-term losses [n_terms]; at window ends may boost multipliers."""
  if cfg.mode == "off":
    return state
  losses = jnp.asarray(losses, jnp.float32)
  log_l = jnp.log10(jnp.maximum(losses, 1e-30))
  count = state.count + 1
  window_log = state.window_log + log_l
  window_sq = state.window_sq + losses ** 2
  window_raw = state.window_raw + losses
  end_of_window = count >= cfg.interval
  active = step >= cfg.start_step
  mean_log = window_log / count
  adapted = jnp.asarray(cfg.adapted)
  if cfg.mode == "bounded":
    improvement = state.prev_mean_log - mean_log  # ~1e30 on the first window: no boost
    plateau = improvement < cfg.plateau_tol
    boosted = jnp.minimum(state.multipliers * cfg.factor, cfg.cap)
  else:  # legacy: variance test on the raw loss, no cap
    mean = window_raw / count
    var = window_sq / count - mean ** 2
    plateau = var < cfg.legacy_var_threshold
    boosted = state.multipliers * cfg.factor
  boost = end_of_window & active & plateau & adapted
  multipliers = jnp.where(boost, boosted, state.multipliers)
  reset = lambda a: jnp.where(end_of_window, jnp.zeros_like(a), a)  # noqa: E731
  return AdaptiveState(
      multipliers=multipliers,
      window_log=reset(window_log),
      window_sq=reset(window_sq),
      window_raw=reset(window_raw),
      prev_mean_log=jnp.where(end_of_window, mean_log, state.prev_mean_log),
      count=jnp.where(end_of_window, 0, count).astype(jnp.int32))


def effective_weights(curriculum: Curriculum, state: AdaptiveState, step) -> jax.Array:
  """Phase weight x adaptive multiplier, per LOSS_TERMS entry."""
  return curriculum.weights_at(step) * state.multipliers


def term_index(names: Sequence[str]) -> list[int]:
  return [LOSS_TERMS.index(n) for n in names]
