"""A TrainState with an explicit PRNG key; per-step randomness is fold_in(rng, step)."""
from __future__ import annotations

import jax
from flax.training import train_state


class TrainState(train_state.TrainState):
  """flax TrainState (step, params, opt_state, tx, apply_fn) plus the run's base PRNG key."""
  rng: jax.Array


def step_rng(state) -> jax.Array:
  """The key for the current step: fold_in(base key, step), so a resumed run draws the same."""
  return jax.random.fold_in(state.rng, state.step)
