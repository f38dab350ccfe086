"""Host-side bookkeeping of one growing run: depth, FLOP budget, growth decisions, events.

Shared by `growth.train` (checkpointed runs on common.loop) and `growth.experiment` (many
in-memory runs). Growth decisions happen only at *boundaries* (evaluations, scheduled growth
steps, the end of an isolated-training phase), so a run is a sequence of fixed-depth segments,
each with its own compiled step.
"""
from __future__ import annotations

import math
import time
from typing import Any

import jax
import jax.numpy as jnp

from common import config_validation as cv
from growth import data as data_lib
from growth import geometry
from growth import model as model_lib
from growth import stagnation
from growth import steps
from growth import strategies

TRIGGERS = ("geometry", "schedule", "none")


def validate(config) -> None:
  """One clear ConfigError for the first bad field."""
  cv.check_in(config, "data.corpus", ("shakespeare", "wikitext"))
  cv.check_in(config, "data.tokenizer", ("byte", "word"))
  cv.check_int(config, "data.batch_size", min_value=1)
  cv.check_int(config, "data.eval_batches", min_value=1)
  cv.check_int(config, "data.test_batches", min_value=1)
  cv.check_int(config, "data.max_train_tokens", min_value=0)
  for f in ("seq_len", "d_model", "n_heads", "mlp_ratio"):
    cv.check_int(config, f"model.{f}", min_value=1)
  cv.check(config.model.d_model % config.model.n_heads == 0, "model.n_heads",
           config.model.n_heads, f"a divisor of model.d_model={config.model.d_model}")
  cv.check_range(config, "model.dropout", 0.0, 1.0, hi_open=True)
  cv.check_positive(config, "optim.learning_rate", "model.init_std")
  cv.check_range(config, "optim.warmup_fraction", 0.0, 1.0, hi_open=True)
  cv.check_range(config, "optim.end_lr_ratio", 0.0, 1.0)
  cv.check_nonneg(config, "optim.weight_decay", "optim.clip_norm", "optim.isolated_lr_scale")
  for f in ("target_depth", "budget_steps", "log_every", "eval_every", "checkpoint_every",
            "keep_checkpoints"):
    cv.check_int(config, f"train.{f}", min_value=1)
  cv.check(config.train.checkpoint_every % config.train.eval_every == 0,
           "train.checkpoint_every", config.train.checkpoint_every,
           f"a multiple of train.eval_every={config.train.eval_every}")
  g = config.growth
  cv.check_in(config, "growth.strategy", strategies.STRATEGIES)
  cv.check_in(config, "growth.trigger", TRIGGERS)
  cv.check_in(config, "growth.position", strategies.POSITIONS)
  cv.check_int(config, "growth.initial_depth", min_value=1)
  cv.check_int(config, "growth.max_depth", min_value=g.initial_depth)
  cv.check_int(config, "growth.stack_factor", min_value=2)
  cv.check_int(config, "growth.isolated_steps", min_value=0)
  cv.check_int(config, "growth.ramp_steps", min_value=1)
  cv.check_int(config, "growth.collect_every", min_value=1)
  cv.check_int(config, "growth.history_size", min_value=3)
  cv.check_int(config, "growth.patience", min_value=1)
  cv.check_int(config, "growth.warmup_steps", min_value=0)
  cv.check_int(config, "growth.post_growth_freeze_steps", min_value=0)
  cv.check_nonneg(config, "growth.threshold", "growth.tau_crit", "growth.kappa_crit")
  sched = tuple(g.schedule_steps)
  cv.check(all(isinstance(s, int) and s > 0 for s in sched) and list(sched) == sorted(set(sched)),
           "growth.schedule_steps", sched, "strictly increasing positive integers")
  cv.check_int(config, "geometry.k_subspace", min_value=1, max_value=g.history_size - 2)
  cv.check_int(config, "geometry.ell_orth", min_value=0)
  cv.check_nonneg(config, "geometry.beta0", "geometry.gamma0", "geometry.eta0")
  cv.check_in(config, "geometry.eta_mode", geometry.ETA_MODES)
  cv.check_in(config, "geometry.direction", geometry.DIRECTIONS)
  cv.check_in(config, "geometry.one_d", geometry.ONE_D_MODES)


def growth_spec(config) -> strategies.GrowthSpec:
  g, e = config.growth, config.geometry
  ext = geometry.ExtrapolationConfig(
      beta0=e.beta0, gamma0=e.gamma0, eta0=e.eta0, k_subspace=e.k_subspace, ell_orth=e.ell_orth,
      tau_crit=g.tau_crit, kappa_crit=g.kappa_crit, eta_mode=e.eta_mode, direction=e.direction,
      svd_center=e.svd_center, one_d=e.one_d)
  return strategies.GrowthSpec(strategy=g.strategy, position=g.position,
                               stack_factor=g.stack_factor, extrapolation=ext)


def stagnation_config(config) -> stagnation.StagnationConfig:
  g = config.growth
  return stagnation.StagnationConfig(
      patience=g.patience, threshold=float(g.threshold), warmup_steps=g.warmup_steps,
      post_growth_freeze_steps=g.post_growth_freeze_steps, tau_crit=float(g.tau_crit),
      kappa_crit=float(g.kappa_crit))


class GrowthRun:
  """Depth, budget and growth events of one run; `meta()` / `meta=` round-trip for resume."""

  def __init__(self, config, vocab_size: int, meta: dict | None = None):
    validate(config)
    self.config = config
    self.model_cfg = model_lib.GPTConfig.from_config(config.model, vocab_size)
    self.optim = steps.OptimSpec.from_config(config.optim)
    self.spec = growth_spec(config)
    self.stag_cfg = stagnation_config(config)
    g = config.growth
    self.trigger, self.max_depth = g.trigger, g.max_depth
    self.schedule = tuple(g.schedule_steps)
    self.history_size, self.collect_every = g.history_size, g.collect_every
    self.eval_every = config.train.eval_every
    self.tokens_per_step = config.data.batch_size * config.model.seq_len
    self.budget = self.flops_per_step(config.train.target_depth) * config.train.budget_steps
    self.depth = g.initial_depth
    self.events: list[dict] = []
    self.stagnation = stagnation.init()
    self.isolated_until = 0
    self.ramp_until = 0  # msg: the new block's mask ramps until this step
    self.overhead_s = 0.0  # wall-clock of snapshots, tau/kappa and growth (incl. extrapolation)
    if meta:
      self.depth = int(meta["depth"])
      self.events = list(meta["events"])
      self.stagnation = stagnation.StagnationState.from_json(meta["stagnation"])
      self.isolated_until = int(meta["isolated_until"])
      self.ramp_until = int(meta.get("ramp_until", 0))
      self.overhead_s = float(meta.get("overhead_s", 0.0))

  def meta(self) -> dict:
    return {"depth": self.depth, "events": self.events, "stagnation": self.stagnation.to_json(),
            "isolated_until": self.isolated_until, "ramp_until": self.ramp_until,
            "overhead_s": self.overhead_s}

  # ---- budget ----
  def flops_per_step(self, depth: int) -> float:
    return model_lib.train_flops_per_token(self.model_cfg, depth) * self.tokens_per_step

  def flops_at(self, step: int) -> float:
    """Training FLOPs spent by the end of `step` (integrated over the depth history)."""
    total, prev_step, depth = 0.0, 0, self.config.growth.initial_depth
    for ev in self.events:
      if ev["step"] >= step:
        break
      total += (ev["step"] - prev_step) * self.flops_per_step(depth)
      prev_step, depth = ev["step"], ev["depth_after"]
    return total + (step - prev_step) * self.flops_per_step(depth)

  def total_steps(self) -> int:
    """Steps until the budget is spent at the current depth (shrinks when the model grows)."""
    last = self.events[-1]["step"] if self.events else 0
    remaining = self.budget - self.flops_at(last)
    return last + max(0, math.ceil(remaining / self.flops_per_step(self.depth) - 1e-9))

  # ---- segments ----
  def initial_state(self, rng: jax.Array) -> steps.GrowthState:
    state = steps.init_state(self.model_cfg, self.depth, self.optim, self.history_size, rng)
    return steps.place(steps.reset_history(state, self.frontier(), self.history_size))

  def abstract_state(self, meta: dict | None = None):
    depth = int(meta["depth"]) if meta else self.config.growth.initial_depth
    return jax.eval_shape(lambda: steps.init_state(self.model_cfg, depth, self.optim,
                                                   self.history_size, jax.random.key(0)))

  def frontier(self) -> str:
    return model_lib.block_name(0 if self.spec.position == "below" else self.depth - 1)

  def frozen(self, step: int) -> tuple[str, ...]:
    if step >= self.isolated_until or not self.events:
      return ()
    new = set(self.events[-1]["new_blocks"])
    return tuple(model_lib.block_name(i) for i in range(self.depth)
                 if model_lib.block_name(i) not in new)

  def ramped(self, step: int) -> tuple[int, ...]:
    """Indices of the blocks whose MSG mask is still ramping at `step` (() otherwise)."""
    if step >= self.ramp_until or not self.events:
      return ()
    return tuple(int(n.split("_")[1]) for n in self.events[-1]["new_blocks"])

  def block_mix(self, step: int, state: steps.GrowthState):
    """The MSG block mask at `step` for evaluation (None outside a ramp)."""
    return steps.block_mix(self.depth, self.ramped(step), self.config.growth.ramp_steps, step,
                           state.growth_step)

  def train_step(self, step: int):
    inc = self.flops_per_step(self.depth) / self.budget
    ramped = self.ramped(step)
    return steps.train_step_fn(self.model_cfg, self.depth, self.optim, inc, self.frozen(step),
                               ramped, self.config.growth.ramp_steps if ramped else 0)

  def can_grow(self, step: int) -> bool:
    if step >= self.total_steps():
      return False
    if self.spec.strategy == "stack":
      return self.depth * self.spec.stack_factor <= self.max_depth
    return self.depth < self.max_depth

  def next_boundary(self, step: int) -> int:
    cands = [(step // self.eval_every + 1) * self.eval_every, self.total_steps()]
    if self.trigger == "schedule":
      cands += [s for s in self.schedule if s > step]
    if self.isolated_until > step:
      cands.append(self.isolated_until)
    if self.ramp_until > step:
      cands.append(self.ramp_until)
    return min(cands)

  def collect(self, step: int, state: steps.GrowthState) -> steps.GrowthState:
    if step % self.collect_every:
      return state
    t = time.perf_counter()
    state = steps.collect_fn(self.frontier(), self.history_size)(state)
    jax.block_until_ready(state.history.count)
    self.overhead_s += time.perf_counter() - t
    return state

  def boundary(self, step: int, state: steps.GrowthState, evals: data_lib.EvalSets) -> tuple[
      steps.GrowthState, dict, dict | None]:
    """Evaluation, stagnation check and (maybe) growth at a segment boundary.

    The stagnation detector reads the validation loss only; `test/loss` (the held-out split
    that every reported number comes from) is computed here but never used for a decision.
    """
    metrics: dict[str, float] = {}
    is_eval = step % self.eval_every == 0 or step == self.total_steps()
    if not is_eval and not (self.trigger == "schedule" and step in self.schedule):
      return state, metrics, None
    fire = False
    if is_eval:
      mix = self.block_mix(step, state)
      metrics["val/loss"] = steps.evaluate(state.params, self.model_cfg, evals.valid, mix)
      metrics["test/loss"] = steps.evaluate(state.params, self.model_cfg, evals.test, mix)
      metrics["val/depth"] = float(self.depth)
      t = time.perf_counter()
      count = int(state.history.count)
      tau, kappa = (geometry.tree_stretch_and_curvature(geometry.history_view(state.history))
                    if count >= 2 else (1.0, 0.0))
      self.overhead_s += time.perf_counter() - t
      self.stagnation, fired, info = stagnation.update(
          self.stagnation, self.stag_cfg, step=step, tau=tau, kappa=kappa,
          val_loss=metrics["val/loss"], num_snapshots=count)
      metrics.update(info)
      fire = fired and self.trigger == "geometry"
    if self.trigger == "schedule" and step in self.schedule:
      fire = True
    if not (fire and self.can_grow(step)):
      return state, metrics, None
    state, event = self.grow(step, state)
    return state, metrics, event

  def grow(self, step: int, state: steps.GrowthState) -> tuple[steps.GrowthState, dict]:
    t = time.perf_counter()
    rng = jax.random.fold_in(jax.random.fold_in(state.rng, step), 0x6772)
    params, opt_state, info = strategies.grow(
        self.spec, state.params, state.opt_state, state.history, tx=self.optim.tx(),
        cfg=self.model_cfg, rng=rng)
    self.depth = info["depth_after"]
    state = state.replace(params=params, opt_state=opt_state,
                          growth_step=jnp.asarray(step, jnp.int32))
    state = steps.place(steps.reset_history(state, self.frontier(), self.history_size))
    jax.block_until_ready(state)
    self.stagnation = stagnation.note_growth(self.stagnation, step)
    self.isolated_until = step + self.config.growth.isolated_steps
    if self.spec.strategy == "msg":
      self.ramp_until = step + self.config.growth.ramp_steps
    dt = time.perf_counter() - t
    self.overhead_s += dt
    event = {"step": step, "depth_before": info["depth_before"], "depth_after": self.depth,
             "strategy": self.spec.strategy, "new_blocks": info["new_blocks"],
             "seconds": dt, **{k: float(v) for k, v in info["metrics"].items()}}
    self.events.append(event)
    return state, event


def describe(run: GrowthRun) -> dict[str, Any]:
  return {"budget_flops": run.budget, "total_steps": run.total_steps(), "depth": run.depth,
          "events": run.events, "overhead_s": run.overhead_s}
