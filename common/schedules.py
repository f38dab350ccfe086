"""Learning-rate, weight-decay and EMA-momentum schedules: pure functions of the step (optax)."""
from __future__ import annotations

import jax.numpy as jnp
import optax


def warmup_cosine(peak_value: float, total_steps: int, warmup_steps: int,
                  end_value: float = 0.0, init_value: float = 0.0) -> optax.Schedule:
  """Linear warmup from init_value to peak_value, then cosine decay to end_value at total_steps."""
  if total_steps <= 0:
    raise ValueError(f"total_steps={total_steps!r} is invalid: allowed an integer > 0")
  if not 0 <= warmup_steps <= total_steps:
    raise ValueError(f"warmup_steps={warmup_steps!r} is invalid: allowed 0..total_steps={total_steps}")
  return optax.warmup_cosine_decay_schedule(
      init_value=init_value, peak_value=peak_value, warmup_steps=warmup_steps,
      decay_steps=total_steps, end_value=end_value)


def _cosine_ramp(start: float, end: float, total_steps: int) -> optax.Schedule:
  """start at step 0 → end at total_steps along a half cosine; constant = end afterwards."""
  if total_steps <= 0:
    raise ValueError(f"total_steps={total_steps!r} is invalid: allowed an integer > 0")

  def schedule(step):
    t = jnp.clip(jnp.asarray(step, jnp.float32) / total_steps, 0.0, 1.0)
    return end - (end - start) * 0.5 * (1.0 + jnp.cos(jnp.pi * t))

  return schedule


def ema_momentum(start: float = 0.996, end: float = 1.0, total_steps: int = 1) -> optax.Schedule:
  """EMA (target-encoder) momentum, increasing start → end over optimizer steps (I-JEPA/BYOL)."""
  if not 0.0 <= start <= end <= 1.0:
    raise ValueError(f"ema momentum start={start!r}, end={end!r} is invalid: allowed 0 <= start <= end <= 1")
  return _cosine_ramp(start, end, total_steps)


def cosine_weight_decay(start: float, end: float, total_steps: int) -> optax.Schedule:
  """Weight decay following a half cosine from start to end (I-JEPA uses 0.04 → 0.4)."""
  if start < 0 or end < 0:
    raise ValueError(f"weight decay start={start!r}, end={end!r} is invalid: allowed values >= 0")
  return _cosine_ramp(start, end, total_steps)
