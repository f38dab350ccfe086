"""train_and_evaluate for the g2 learner: curriculum training, checkpoints, final validation."""
from __future__ import annotations

import contextlib
import json
import os
import time
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import logging

from common import checkpoint as checkpoint_lib
from common import config_validation as cv
from common.config_validation import ConfigError
from common import loop, metrics as metrics_lib, plots, schedules, sharding
from common.train_state import TrainState
from g2 import curriculum as curriculum_lib
from g2 import model, objective, problems, validation

LOSS_TERMS = curriculum_lib.LOSS_TERMS


class G2State(TrainState):
  """TrainState (+rng) with the adaptive loss scheduler's state and the L-BFGS state (() when
  the run has no L-BFGS phase)."""
  sched: curriculum_lib.AdaptiveState
  lbfgs: Any


def validate_config(config: ml_collections.ConfigDict) -> None:
  cv.check_in(config, "problem.name", problems.PROBLEMS)
  cv.check_positive(config, "optim.learning_rate", "optim.grad_clip", "problem.background_amplitude")
  cv.check_nonneg(config, "optim.weight_decay", "optim.end_learning_rate")
  for f in ("train.num_steps", "train.batch_size", "train.log_every", "train.eval_batch_size",
            "train.checkpoint_every", "model.phi_width", "model.max_frequency",
            "model.harmonic_width", "model.profile_width", "harmonic.chunk", "yukawa.chunk",
            "yukawa.mc_samples", "validation.n_points", "validation.curvature_points",
            "harmonic.grid_n", "problem.background_min_l1"):
    cv.check_int(config, f, min_value=1)
  cv.check_in(config, "problem.torus_background", problems.TORUS_BACKGROUNDS)
  cv.check_in(config, "harmonic.trial_frequencies", ("metric", "axes"))
  cv.check_nonneg(config, "problem.diffeo_amplitude")
  for f, lo in (("yukawa.grid_ns", 2), ("harmonic.trial_sizes", 0)):
    vals = tuple(cv.get_field(config, f))
    cv.check(bool(vals) and all(isinstance(v, int) and v >= lo for v in vals), f, vals,
             f"a non-empty tuple of integers >= {lo}")
  for f in ("model.n_h2", "model.n_h3", "model.phi_depth", "model.harmonic_depth",
            "train.eval_every", "train.plot_every", "optim.warmup_steps", "train.keep_best",
            "problem.background_modes", "problem.diffeo_modes"):
    cv.check_int(config, f, min_value=0)
  cv.check_int(config, "train.harmonic_batch_size", min_value=1)
  cv.check_int(config, "train.lbfgs_steps", min_value=0, max_value=config.train.num_steps)
  cv.check_int(config, "train.lbfgs_memory", min_value=1)
  cv.check_int(config, "model.profile_degree", min_value=1)
  cv.check_int(config, "optim.warmup_steps", max_value=config.train.num_steps)
  cv.check_range(config, "train.positivity_floor", 0.0, 1.0, lo_open=True, hi_open=True)


def _make_optimizer(config, groups) -> optax.GradientTransformation:
  """AdamW with gradient clipping per network (phi, harmonic heads): one global clip over both
  would let the heads' large early gradients shrink phi's updates."""
  lr = schedules.warmup_cosine(config.optim.learning_rate, config.train.num_steps,
                               config.optim.warmup_steps, end_value=config.optim.end_learning_rate)

  def single():
    return optax.chain(optax.clip_by_global_norm(config.optim.grad_clip),
                       optax.adamw(lr, weight_decay=config.optim.weight_decay))

  def labels(params):
    return {k: jax.tree.map(lambda _, k=k: k, v) for k, v in params.items()}

  return optax.multi_transform({g: single() for g in groups}, labels)


class Learner:
  """Everything the loop needs, built from a config: problem, nets, losses, step, eval."""

  def __init__(self, config):
    self.config = config
    self.problem = problems.make_problem(config)
    self.curriculum = curriculum_lib.curriculum_from_config(config.curriculum,
                                                            config.train.num_steps)
    self.adaptive = curriculum_lib.adaptive_config_from(config.adaptive)
    mc = config.model
    self.train_harmonic = bool(config.train.train_harmonic and self.problem.name == "torus"
                               and (mc.n_h2 > 0 or mc.n_h3 > 0))
    self.harmonic_net = model.MultiHeadFormNet(
        max_frequency=mc.max_frequency, width=mc.harmonic_width, depth=mc.harmonic_depth,
        n_h2=mc.n_h2, n_h3=mc.n_h3) if self.problem.name == "torus" else None
    active = set(self.problem.terms)
    if self.train_harmonic:
      active |= {"gram_h2", "gram_h3", "harm_pen"} - ({"gram_h2"} if mc.n_h2 == 0 else set()) \
          - ({"gram_h3"} if mc.n_h3 == 0 else set())
    self.active_terms = tuple(t for t in LOSS_TERMS if t in active)
    self.term_mask = np.asarray([t in active for t in LOSS_TERMS], np.float32)
    unused = [t for t in LOSS_TERMS if t not in active and np.any(self.curriculum.weights[
        :, LOSS_TERMS.index(t)] > 0)]
    if unused:
      logging.info("loss terms with weights but no meaning for problem %r (unused): %s",
                   self.problem.name, unused)
    self.tx = _make_optimizer(config, ("phi", "harmonic") if self.harmonic_net is not None
                              else ("phi",))
    # The last `lbfgs_steps` steps: L-BFGS on one fixed batch, inside the last
    # curriculum phase with the adaptive multipliers frozen, so its objective is deterministic.
    self.lbfgs_steps = int(config.train.lbfgs_steps)
    self.adam_steps = config.train.num_steps - self.lbfgs_steps
    # Backtracking (Armijo) line search: evaluates only the loss inside its loop; optax's default
    # zoom search nests value_and_grad in while loops and tripled the step's compile time here.
    self.lbfgs = optax.lbfgs(
        memory_size=config.train.lbfgs_memory,
        linesearch=optax.scale_by_backtracking_linesearch(max_backtracking_steps=20)
    ) if self.lbfgs_steps else None
    if self.lbfgs_steps and self.adam_steps < self.curriculum.ends[-2]:
      raise ConfigError(f"config.train.lbfgs_steps={self.lbfgs_steps!r} is invalid: allowed at "
                        f"most {config.train.num_steps - self.curriculum.ends[-2]} (the L-BFGS "
                        "steps must lie in the last curriculum phase)")
    self.mesh = sharding.make_mesh()

  # ---------------------------------------------------------------- state
  def init_state(self) -> G2State:
    rng = jax.random.PRNGKey(self.config.train.seed)
    k_phi, k_h, k_state = jax.random.split(rng, 3)

    def init_params(k_phi, k_h):
      params = {"phi": self.problem.init_params(k_phi)}
      if self.harmonic_net is not None:
        params["harmonic"] = self.harmonic_net.init(k_h, jnp.zeros((7,), jnp.float32))
      return params

    params = jax.jit(init_params)(k_phi, k_h)  # one program (op by op: hundreds of compiles)
    return G2State.create(apply_fn=None, params=params, tx=self.tx, rng=k_state,
                          sched=curriculum_lib.adaptive_init(),
                          lbfgs=self._lbfgs_init(params) if self.lbfgs else ())

  def _lbfgs_init(self, params):
    """optax.lbfgs state with (1) its own buffer per leaf: init shares zeros between leaves and
    the step donates its state (a buffer donated twice is an error); (2) finite leaves: the line
    search starts with value = decrease_error = inf (stored outputs, never read by its update),
    and the checkpointer rejects non-finite states, which would make every checkpoint of the Adam
    phase unrestorable."""
    def clean(a):
      a = jnp.array(a, copy=True)
      if jnp.issubdtype(a.dtype, jnp.inexact):
        a = jnp.where(jnp.isfinite(a), a, jnp.finfo(a.dtype).max)
      return a

    return jax.tree.map(clean, self.lbfgs.init(params))

  def head_fns(self, harmonic_params):
    n2, n3 = self.config.model.n_h2, self.config.model.n_h3
    f2 = (lambda x: self.harmonic_net.apply(harmonic_params, x)[0]) if n2 > 0 else None
    f3 = (lambda x: self.harmonic_net.apply(harmonic_params, x)[1]) if n3 > 0 else None
    return f2, f3

  # ---------------------------------------------------------------- data
  def batch(self, step: int) -> dict:
    """Deterministic in (seed, step): a resumed run sees the same points. The L-BFGS steps all
    get the same batch (drawn at the first of them)."""
    rng = np.random.default_rng([self.config.train.seed, min(step, self.adam_steps)])
    grid_n = self.curriculum.grid_n[self.curriculum.phase_of_host(step)]
    out = {"x": self.problem.sample(rng, self.config.train.batch_size, grid_n)}
    if self.train_harmonic:
      out["xh"] = self.problem.sample(rng, self.config.train.harmonic_batch_size, grid_n)
    return out

  # ---------------------------------------------------------------- losses
  def loss_terms(self, params, batch) -> tuple[jax.Array, dict]:
    phi_fn = self.problem.phi_fn(params["phi"])
    x = batch["x"]
    plane = self.problem.plane if "calibration" in self.active_terms else None
    stats = objective.training_statistics(phi_fn, x, plane, self.problem.loss_weighting)
    terms = {t: jnp.zeros((), jnp.float32) for t in LOSS_TERMS}
    for t in ("closure", "coclosure", "volume", "calibration"):
      if t in self.active_terms:
        terms[t] = stats[t]
    aux = {k: stats[k] for k in ("torsion", "mean_sqrt_det_g", "calibration_ratio") if k in stats}
    terms.update(self.problem.extra_losses(params["phi"], x, stats))
    if self.train_harmonic:
      frozen_phi = self.problem.phi_fn(jax.lax.stop_gradient(params["phi"]))
      h = objective.harmonic_losses(*self.head_fns(params["harmonic"]), frozen_phi, batch["xh"])
      terms["gram_h2"], terms["gram_h3"], terms["harm_pen"] = h["gram_h2"], h["gram_h3"], \
          h["harm_pen"]
      aux["energy_h2"], aux["energy_h3"] = h["energy_h2"], h["energy_h3"]
    return jnp.stack([terms[t] for t in LOSS_TERMS]), aux

  def train_step(self, state: G2State, batch) -> tuple[G2State, dict]:
    weights = (curriculum_lib.effective_weights(self.curriculum, state.sched, state.step)
               * self.term_mask)

    def loss_fn(params):
      values, aux = self.loss_terms(params, batch)
      return jnp.sum(weights * values), (values, aux)

    (loss, (values, aux)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    new_sched = curriculum_lib.adaptive_update(state.sched, values, state.step, self.adaptive)
    metrics = self._metrics(state.step, loss, grads, weights, values, aux)
    return state.apply_gradients(grads=grads).replace(sched=new_sched), metrics

  def lbfgs_step(self, state: G2State, batch) -> tuple[G2State, dict]:
    """One L-BFGS iteration on the weighted loss of a fixed batch (scheduler frozen)."""
    weights = (curriculum_lib.effective_weights(self.curriculum, state.sched, state.step)
               * self.term_mask)

    def loss_fn(params):
      values, aux = self.loss_terms(params, batch)
      return jnp.sum(weights * values), (values, aux)

    (loss, (values, aux)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    updates, lbfgs_state = self.lbfgs.update(grads, state.lbfgs, state.params, value=loss,
                                             grad=grads, value_fn=lambda p: loss_fn(p)[0])
    metrics = self._metrics(state.step, loss, grads, weights, values, aux)
    return state.replace(step=state.step + 1, params=optax.apply_updates(state.params, updates),
                         lbfgs=lbfgs_state), metrics

  def step_fn_at(self, step: int):
    """The (unjitted) step function for the step after `step` completed steps."""
    return self.lbfgs_step if self.lbfgs is not None and step >= self.adam_steps \
        else self.train_step

  def _metrics(self, step, loss, grads, weights, values, aux) -> dict:
    metrics = {"train/loss": loss, "train/grad_norm": optax.tree.norm(grads),
               "train/phase": self.curriculum.phase_of(step).astype(jnp.float32)}
    for i, t in enumerate(LOSS_TERMS):
      if t in self.active_terms:
        metrics[f"train/{t}"] = values[i]
        metrics[f"weight/{t}"] = weights[i]
    for k, v in aux.items():
      metrics[f"train/{k}"] = v
    return metrics

  # ---------------------------------------------------------------- evaluation
  def eval_points(self) -> np.ndarray:
    rng = np.random.default_rng([self.config.train.seed, 10 ** 9])
    return self.problem.sample_held_out(rng, self.config.train.eval_batch_size)

  def make_eval_fn(self):
    xs = jnp.asarray(self.eval_points())

    @jax.jit
    def evaluate(params):
      phi_fn = self.problem.phi_fn(params["phi"])
      out = objective.torsion_statistics(phi_fn, xs)
      out.update(objective.positivity(phi_fn, xs))
      out.update(self.problem.exact_error(params["phi"]))
      return out

    return evaluate


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Trains on the configured problem, writes checkpoints, history, validation and figures.

  With config.train.float64 the whole job (parameters, points, checkpoints) runs in float64,
  scoped to this call (jax.enable_x64), so other jobs in the process keep float32.
  """
  if config.problem.name == "joyce":  # issue 16 stages 1-4: no training loop
    from g2 import joyce_pipeline  # pylint: disable=g-import-not-at-top
    return joyce_pipeline.run(config, workdir)
  validate_config(config)
  with jax.enable_x64(True) if config.train.float64 else contextlib.nullcontext():
    return _train_and_evaluate(config, workdir)


def _train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
  cpu0, wall0 = time.process_time(), time.time()
  learner = Learner(config)
  cfg_t = config.train
  os.makedirs(os.path.join(workdir, "results"), exist_ok=True)
  ckpt = checkpoint_lib.Checkpointer(
      os.path.join(workdir, "checkpoints"), save_every=cfg_t.checkpoint_every, keep_latest=1,
      keep_best=cfg_t.keep_best, best_metric="ckpt/torsion_floored" if cfg_t.keep_best else None)
  state, meta, start_step = loop.restore_or_init(ckpt, learner.init_state, mesh=learner.mesh)
  if start_step:
    phase = learner.curriculum.phase_of_host(start_step)
    logging.info("resumed at step %d in phase %d (%s); adaptive multipliers %s", start_step, phase,
                 learner.curriculum.names[phase], np.asarray(state.sched.multipliers).tolist())
  writer = metrics_lib.MetricWriter(workdir, config=config, resume_step=start_step)
  evaluate = learner.make_eval_fn()
  cache: dict[int, dict] = {}

  def eval_fn(state, step):
    if step not in cache:
      cache.clear()
      cache[step] = {f"eval/{k}": float(v) for k, v in evaluate(state.params).items()}
    return cache[step]

  def ckpt_metrics(step, state):
    ev = eval_fn(state, step)
    positive = ev["eval/positivity_margin_min"] > cfg_t.positivity_floor
    return {"ckpt/torsion_floored": ev["eval/torsion"] if positive else float("inf")}

  def meta_fn(step, state):
    phase = learner.curriculum.phase_of_host(step)
    return {"phase": phase, "phase_name": learner.curriculum.names[phase]}

  def plot_fn(step):
    plots.dashboard(writer.history(), os.path.join(workdir, "results", "dashboard.png"),
                    events=learner.curriculum.events(), title=f"g2 {config.problem.name}",
                    log_scale=("torsion", "coclosure", "closure", "loss"))

  train_step = loop.jit_train_step(learner.step_fn_at(start_step), learner.mesh)
  hooks = ()
  if learner.lbfgs is not None and start_step < learner.adam_steps:
    def switch_to_lbfgs(step, state):
      if step == learner.adam_steps:
        logging.info("step %d: Adam done, %d L-BFGS steps on a fixed batch", step,
                     learner.lbfgs_steps)
        return state, loop.jit_train_step(learner.lbfgs_step, learner.mesh)
      return None
    hooks = (switch_to_lbfgs,)
  state, status = loop.run(
      state, train_step, learner.batch, start_step=start_step, num_steps=cfg_t.num_steps,
      hooks=hooks,
      writer=writer, checkpointer=ckpt, log_every=cfg_t.log_every, eval_every=cfg_t.eval_every,
      eval_fn=eval_fn, plot_every=cfg_t.plot_every, plot_fn=plot_fn,
      checkpoint_metrics_fn=ckpt_metrics, meta_fn=meta_fn, progress_desc=f"g2 {config.variant}",
      key_metrics=("train/loss", "train/torsion", "eval/torsion"))
  writer.export_history(os.path.join(workdir, "results"))
  if status != "done":
    writer.close()
    ckpt.close()
    return {"status": status}
  initial = learner.init_state()
  report = validation.final_report(learner, initial.params, state.params, evaluate, workdir)
  report["cost"] = {"cpu_s": time.process_time() - cpu0, "wall_s": time.time() - wall0,
                    "start_step": start_step, "load_average_at_end": os.getloadavg(),
                    "definition": "process CPU time (user + sys, all threads) of this call, "
                                  "training from start_step + validation"}
  with open(os.path.join(workdir, "results", "final_validation.json"), "w") as f:
    json.dump(report, f, indent=2, default=_json_default)
  writer.close()
  ckpt.close()
  return report


def _json_default(o: Any):
  if isinstance(o, (np.ndarray, jax.Array)):
    return np.asarray(o).tolist()
  if isinstance(o, (np.floating, np.integer)):
    return o.item()
  raise TypeError(f"not JSON-serialisable: {type(o)}")
