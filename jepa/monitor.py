"""Collapse monitor: alarms on a relative drop of effective rank and on per-dimension std collapse.

A fixed floor on the effective rank misses slow collapse (a pooled rank falling 5.88 -> 3.56 stays
above any floor that is safe at initialisation), so the monitor compares every evaluation with the
best value seen so far in the run (the reference survives restarts: it is rebuilt from the metric
history). Signals, per monitored level (`level_<l>` token rows and `pooled` image features):
  * rank drop:  effective_rank < (1 - erank_drop) * max(effective_rank so far);
  * std drop:   mean per-dimension std < std_drop * max(mean std so far);
  * dead dims:  more than half of the dimensions have std < 1e-3 * the level's reference std;
  * floor:      effective_rank < erank_floor (the absolute check kept from before).
Each evaluation writes `eval/<level>/effective_rank_ratio`, `.../std_ratio`, `.../dead_dim_fraction`
and one `eval/collapse_alarm` (0/1) scalar, and logs one loud warning per alarm.
"""
from __future__ import annotations

import dataclasses

import numpy as np
from absl import logging

DEAD_STD_FRACTION = 1e-3  # a dimension is dead when its std < this x the level's reference std


def dead_dim_fraction(x: np.ndarray, reference_std: float) -> float:
  """Fraction of the columns of x [n, d] whose std is below DEAD_STD_FRACTION * reference_std."""
  std = np.asarray(x, np.float64).std(0)
  return float(np.mean(std < DEAD_STD_FRACTION * max(reference_std, 1e-30)))


@dataclasses.dataclass
class CollapseMonitor:
  """Host-side monitor over the periodic evaluations of one run."""
  levels: tuple[str, ...]
  erank_drop: float = 0.3
  std_drop: float = 0.1
  erank_floor: float = 0.0
  best_erank: dict = dataclasses.field(default_factory=dict)
  best_std: dict = dataclasses.field(default_factory=dict)

  @classmethod
  def from_history(cls, history: dict, levels, **kwargs) -> "CollapseMonitor":
    """Rebuilds the running maxima from MetricWriter.history() (exact across restarts)."""
    mon = cls(tuple(levels), **kwargs)
    for lv in mon.levels:
      for name, store in ((f"eval/{lv}/effective_rank", mon.best_erank),
                          (f"eval/{lv}/std", mon.best_std)):
        if name in history and len(history[name][1]):
          store[lv] = float(np.max(history[name][1]))
    return mon

  def update(self, metrics: dict, step: int, dims: dict | None = None) -> tuple[dict, list[str]]:
    """metrics: eval/<level>/{effective_rank,std} scalars; dims: optional <level> -> features [n, d].

    Returns (extra scalars to log, alarm messages).
    """
    extra, alarms = {}, []
    for lv in self.levels:
      erank, std = metrics[f"eval/{lv}/effective_rank"], metrics[f"eval/{lv}/std"]
      self.best_erank[lv] = max(self.best_erank.get(lv, erank), erank)
      self.best_std[lv] = max(self.best_std.get(lv, std), std)
      r_rank = erank / max(self.best_erank[lv], 1e-30)
      r_std = std / max(self.best_std[lv], 1e-30)
      extra[f"eval/{lv}/effective_rank_ratio"] = r_rank
      extra[f"eval/{lv}/std_ratio"] = r_std
      if r_rank < 1.0 - self.erank_drop:
        alarms.append(f"{lv} effective rank {erank:.3f} fell to {r_rank:.0%} of its best "
                      f"{self.best_erank[lv]:.3f} (alarm below {1 - self.erank_drop:.0%})")
      if r_std < self.std_drop:
        alarms.append(f"{lv} per-dimension std {std:.3g} fell to {r_std:.1%} of its best "
                      f"{self.best_std[lv]:.3g} (alarm below {self.std_drop:.0%})")
      if erank < self.erank_floor:
        alarms.append(f"{lv} effective rank {erank:.3f} < floor {self.erank_floor:.3f}")
      if dims is not None and lv in dims:
        dead = dead_dim_fraction(dims[lv], self.best_std[lv])
        extra[f"eval/{lv}/dead_dim_fraction"] = dead
        if dead > 0.5:
          alarms.append(f"{lv}: {dead:.0%} of the dimensions have collapsed (std < "
                        f"{DEAD_STD_FRACTION:g} x the best mean std)")
    extra["eval/collapse_alarm"] = float(bool(alarms))
    for a in alarms:
      logging.warning("!!! COLLAPSE WARNING at step %d: %s. The representation is collapsing; "
                      "check the EMA momentum, learning rate and masks.", step, a)
    return extra, alarms
