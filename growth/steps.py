"""Train state, the compute-indexed LR schedule and the jitted train/eval steps (one per depth).

The learning rate is a function of the fraction of the training-FLOP budget spent
(`state.budget_used`), not of the step: a growing run takes more (cheaper) steps than the fixed
target model, and with a step-indexed schedule it could not decay fully at its budget without
knowing its growth times in advance. Indexed by compute, every run (fixed, scheduled growth,
geometry-triggered growth) warms up and decays to `end_lr_ratio * peak` exactly at the budget
(the "No Train No Gain" rule).
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any

import flax
import jax
import jax.numpy as jnp
import optax

from common import loop
from common import sharding as sharding_lib
from growth import geometry
from growth import model as model_lib
from growth import optim

PyTree = Any


@dataclasses.dataclass(frozen=True)
class OptimSpec:
  peak_lr: float = 3e-3
  warmup_fraction: float = 0.05   # of the FLOP budget
  end_lr_ratio: float = 0.0       # final lr / peak lr (0 = fully decayed)
  b1: float = 0.9
  b2: float = 0.99
  eps: float = 1e-8
  weight_decay: float = 0.1
  clip_norm: float = 1.0
  isolated_lr_scale: float = 1.0  # lr multiplier during post-growth isolated training

  @classmethod
  def from_config(cls, c) -> "OptimSpec":
    return cls(peak_lr=c.learning_rate, warmup_fraction=c.warmup_fraction,
               end_lr_ratio=c.end_lr_ratio, b1=c.b1, b2=c.b2, eps=c.eps,
               weight_decay=c.weight_decay, clip_norm=c.clip_norm,
               isolated_lr_scale=c.isolated_lr_scale)

  def tx(self) -> optax.GradientTransformation:
    return optim.adamw_direction(b1=self.b1, b2=self.b2, eps=self.eps,
                                 weight_decay=self.weight_decay, clip_norm=self.clip_norm)


@flax.struct.dataclass
class GrowthState:
  step: jax.Array               # int32, completed steps
  params: PyTree
  opt_state: PyTree
  rng: jax.Array                # base key; per-step key = fold_in(rng, step)
  history: geometry.HistoryState  # snapshots of the frontier block
  budget_used: jax.Array        # float32, fraction of the training-FLOP budget spent
  growth_step: jax.Array        # int32, step of the last growth (0 before any): msg mask ramp


def lr_at(budget_used: jax.Array, spec: OptimSpec) -> jax.Array:
  """Linear warmup over `warmup_fraction` of the budget, then cosine to end_lr_ratio at 1."""
  f = jnp.clip(budget_used, 0.0, 1.0)
  warm = spec.warmup_fraction
  up = f / warm if warm > 0 else jnp.ones_like(f)
  prog = jnp.clip((f - warm) / max(1.0 - warm, 1e-12), 0.0, 1.0)
  cos = spec.end_lr_ratio + (1 - spec.end_lr_ratio) * 0.5 * (1 + jnp.cos(jnp.pi * prog))
  return spec.peak_lr * jnp.where(f < warm, up, cos)


def cross_entropy(logits: jax.Array, targets: jax.Array) -> jax.Array:
  logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
  return -jnp.take_along_axis(logp, targets[..., None], axis=-1).mean()


@functools.partial(jax.jit, static_argnums=(0, 1, 2, 3))
def init_state(cfg: model_lib.GPTConfig, depth: int, spec: OptimSpec, history_size: int,
               rng: jax.Array) -> GrowthState:
  """The step-0 state (jitted: one compile instead of hundreds of eager ops)."""
  init_rng, run_rng = jax.random.split(rng)
  if jax.dtypes.issubdtype(run_rng.dtype, jax.dtypes.prng_key):
    run_rng = jax.random.key_data(run_rng)  # raw uint32 key: checkpointable by Orbax
  params = model_lib.init_params(cfg, depth, init_rng)
  hist = geometry.snapshot_history(history_size)
  return GrowthState(step=jnp.zeros((), jnp.int32), params=params,
                     opt_state=spec.tx().init(params), rng=run_rng,
                     history=hist.init(params[model_lib.block_name(0)]),
                     budget_used=jnp.zeros((), jnp.float32),
                     growth_step=jnp.zeros((), jnp.int32))


def block_mix(depth: int, ramped: tuple[int, ...], ramp_steps: int, step, growth_step):
  """MSG mask [depth]: 1 for every block, min(1, (step - growth_step) / ramp_steps) for the
  blocks in `ramped` (0 at the growth step, 1 after ramp_steps steps). None if nothing ramps."""
  if not ramped:
    return None
  m = jnp.clip((jnp.asarray(step) - jnp.asarray(growth_step)).astype(jnp.float32)
               / max(int(ramp_steps), 1), 0.0, 1.0)
  idx = jnp.asarray(ramped, jnp.int32)
  return jnp.ones((depth,), jnp.float32).at[idx].set(m)


@functools.lru_cache(maxsize=None)
def train_step_fn(cfg: model_lib.GPTConfig, depth: int, spec: OptimSpec, budget_increment: float,
                  frozen: tuple[str, ...] = (), ramped: tuple[int, ...] = (),
                  ramp_steps: int = 0):
  """Jitted, state-donating train_step(state, batch) for one depth (cached across runs).

  budget_increment: this depth's training FLOPs per step / the run's FLOP budget.
  frozen: block names kept fixed (post-growth isolated training of the new block).
  ramped, ramp_steps: block indices mixed in by the MSG mask (see block_mix).
  """
  model = model_lib.GPT(cfg, depth)
  tx = spec.tx()
  lr_scale = spec.isolated_lr_scale if frozen else 1.0

  def step(state: GrowthState, batch):
    rng = jax.random.fold_in(state.rng, state.step)
    mix = block_mix(depth, ramped, ramp_steps, state.step, state.growth_step)

    def loss_fn(p):
      logits = model.apply({"params": p}, batch["x"], deterministic=cfg.dropout == 0.0,
                           rngs={"dropout": rng}, block_mix=mix)
      return cross_entropy(logits, batch["y"])

    loss, grads = jax.value_and_grad(loss_fn)(state.params)
    grads = optim.keep_frozen(grads, jax.tree.map(jnp.zeros_like, grads), frozen)
    lr = lr_at(state.budget_used, spec) * lr_scale
    direction, opt_state = tx.update(grads, state.opt_state, state.params)
    params = jax.tree.map(lambda p, d: p - lr.astype(p.dtype) * d, state.params, direction)
    params = optim.keep_frozen(params, state.params, frozen)
    opt_state = optim.keep_frozen(opt_state, state.opt_state, frozen)
    new = state.replace(step=state.step + 1, params=params, opt_state=opt_state,
                        budget_used=state.budget_used + jnp.float32(budget_increment))
    return new, {"train/loss": loss, "train/lr": lr, "train/grad_norm": optax.tree.norm(grads)}

  return loop.jit_train_step(step)


@functools.lru_cache(maxsize=None)
def eval_step_fn(cfg: model_lib.GPTConfig, depth: int):
  """Jitted (params, x, y) -> summed token cross-entropy (float32) for one depth."""
  model = model_lib.GPT(cfg, depth)

  def ev(params, x, y, mix):
    logits = model.apply({"params": params}, x, block_mix=mix)
    return cross_entropy(logits, y) * y.size

  return jax.jit(ev)


def evaluate(state_params: PyTree, cfg: model_lib.GPTConfig, batches,
             mix: jax.Array | None = None) -> float:
  """Mean per-token loss over a list of (x, y) batches (mix: optional MSG block mask)."""
  ev = eval_step_fn(cfg, model_lib.depth_of(state_params))
  total = sum(ev(state_params, x, y, mix) for x, y in batches)
  return float(total) / sum(y.size for _, y in batches)


@functools.lru_cache(maxsize=None)
def collect_fn(frontier: str, history_size: int):
  """Jitted state -> state with the frontier block appended to the snapshot history."""
  hist = geometry.snapshot_history(history_size)

  def collect(state: GrowthState) -> GrowthState:
    return state.replace(history=hist.update(state.params[frontier], state.history))

  return jax.jit(collect)


def place(state: GrowthState) -> GrowthState:
  """Commits the state to the replicated sharding the jitted step returns, so the step's second
  call hits the compile cache (uncommitted inputs would compile a second executable)."""
  return jax.device_put(state, sharding_lib.replicated(sharding_lib.make_mesh()))


def reset_history(state: GrowthState, frontier: str, history_size: int) -> GrowthState:
  return state.replace(
      history=geometry.snapshot_history(history_size).init(state.params[frontier]))
