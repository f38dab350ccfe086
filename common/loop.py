"""The train-loop driver: a plain function running a jitted, state-donating step with periodic actions.

    state, meta, start_step = restore_or_init(checkpointer, init_fn)
    state, status = run(state, train_step, batch_fn, start_step=start_step, num_steps=...,
                        writer=writer, checkpointer=checkpointer, log_every=100, ...)

Resumption is exact: batches come from `batch_fn(step)` and step randomness from
`fold_in(rng, step)`, so a run resumed from step k sees what an uninterrupted run saw.
"""
from __future__ import annotations

import math
import signal
import threading
import time
from typing import Any, Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from common import progress as progress_lib
from common import sharding as sharding_lib

PyTree = Any
Metrics = Mapping[str, Any]


class NonFiniteError(FloatingPointError):
  """A metric became NaN/Inf; the run stops. Nothing non-finite is ever checkpointed."""


def jit_train_step(fn: Callable, mesh=None) -> Callable:
  """jit(fn, donate_argnums=0) with replicated state and a batch sharded over ("data",) by
  `sharding.shard_batch`.

  Without `mesh`, the mesh is the default one at call time (all devices, or those of
  `sharding.use_devices`), one compiled program per device set: a step function cached by a
  package stays right when a later run uses other devices.
  """
  if mesh is not None:
    rep = sharding_lib.replicated(mesh)
    # The batch keeps the sharding shard_batch gave each leaf (split over "data", or replicated
    # when its leading axis does not divide by the device count, e.g. padded graph nodes).
    return jax.jit(fn, in_shardings=(rep, None), out_shardings=(rep, rep), donate_argnums=0)
  per_devices: dict[tuple, Callable] = {}

  def current():
    devices = sharding_lib._DEVICES  # None: all devices
    key = None if devices is None else tuple(d.id for d in devices)
    if key not in per_devices:
      per_devices[key] = jit_train_step(fn, sharding_lib.make_mesh())
    return per_devices[key]

  def train_step(state, batch):
    return current()(state, batch)

  train_step.lower = lambda *args, **kw: current().lower(*args, **kw)
  train_step._cache_size = lambda: current()._cache_size()
  return train_step


def restore_or_init(checkpointer, init_fn: Callable[[], PyTree], *, abstract_fn=None, mesh=None):
  """Restores the latest valid checkpoint or calls init_fn(). Returns (state, meta, start_step).

  abstract_fn: optional meta -> abstract state (shapes that depend on saved metadata); by default
  the abstract state is jax.eval_shape(init_fn).
  """
  mesh = mesh or sharding_lib.make_mesh()
  rep = sharding_lib.replicated(mesh)
  state, meta = (None, None)
  if checkpointer is not None:
    state, meta = checkpointer.restore_latest(
        abstract_fn if abstract_fn is not None else jax.eval_shape(init_fn), sharding=rep)
  if state is None:
    state = init_fn()
    if hasattr(state, "step") and hasattr(state, "replace"):
      # A strongly typed int32 step, as restored checkpoints have: a fresh and a resumed run then
      # trace the same train-step program (one compile, and the persistent cache hits on resume).
      state = state.replace(step=jnp.asarray(state.step, jnp.int32))
    return jax.device_put(state, rep), {}, 0
  start = int(meta["step"]) if "step" in meta else int(jax.device_get(state.step))
  logging.info("Resuming from step %d", start)
  return state, meta, start


def check_finite(step: int, metrics: Mapping[str, Any]) -> None:
  for name, value in metrics.items():
    v = np.asarray(value)
    if v.dtype.kind in "fc" and not np.all(np.isfinite(v)):
      raise NonFiniteError(f"metric {name!r} is {v.tolist()} at step {step}: stopping")


def _checkpoint_note(checkpointer) -> str:
  """What a rerun after a NaN stop resumes from: the newest checkpoint, or none."""
  if checkpointer is None:
    return "this loop writes no checkpoints"
  checkpointer.wait()
  steps = checkpointer.all_steps()
  if not steps:
    return ("no checkpoint exists yet, so a rerun starts from step 0 (lower the learning rate "
            "or inspect the data first)")
  return (f"the last good checkpoint is step {steps[-1]} ({checkpointer.directory}/{steps[-1]}); "
          "lower the learning rate or inspect the data, then rerun to resume from it")


def headline(names, key_metrics: Sequence[str] = ()) -> list[str]:
  """The metrics a progress line shows: `key_metrics` that exist, else the losses; loss first."""
  names = list(names)
  keys = [k for k in key_metrics if k in names]
  if not keys:
    keys = sorted((k for k in names if k.rsplit("/", 1)[-1] == "loss"),
                  key=lambda k: (not k.startswith("train"), k))
  return sorted(keys, key=lambda k: "loss" not in k.rsplit("/", 1)[-1])


def _eta(seconds: float) -> str:
  if not math.isfinite(seconds):
    return "?"
  seconds = int(round(seconds))
  h, rem = divmod(seconds, 3600)
  return f"{h}:{rem // 60:02d}:{rem % 60:02d}"


class _SigtermFlag:
  """Records SIGTERM (batch-queue preemption) so the loop can save at a step boundary.

  With several processes, every process must stop at the same step: there the decision is JAX's
  preemption sync point (the coordination service spreads a SIGTERM received by any process and
  agrees on the step), asked at every step by every process.
  """

  def __init__(self):
    self.set = False
    self._previous = None
    self._multi = False
    if jax.process_count() > 1:
      from jax._src import distributed
      self._multi = distributed.global_state.preemption_sync_manager is not None
      if not self._multi:
        logging.warning("jax_enable_preemption_service is off: a SIGTERM is handled by each "
                        "process alone, so processes may stop at different steps")

  def __enter__(self):
    if not self._multi and threading.current_thread() is threading.main_thread():
      self._previous = signal.signal(signal.SIGTERM, self._handle)
    return self

  def _handle(self, signum, frame):
    logging.warning("SIGTERM received: saving at the next step boundary, then exiting")
    self.set = True

  def stop_now(self, step: int) -> bool:
    """Whether to save and stop after `step`; read once per step."""
    if self._multi:
      from jax.experimental import multihost_utils
      self.set = multihost_utils.reached_preemption_sync_point(step)
    return self.set

  def __exit__(self, *exc):
    if self._previous is not None:
      signal.signal(signal.SIGTERM, self._previous)


def run(state: PyTree, train_step: Callable, batch_fn: Callable[[int], PyTree], *,
        start_step: int, num_steps: int, writer, checkpointer=None, log_every: int = 100,
        eval_every: int = 0, eval_fn: Callable[[PyTree, int], Metrics] | None = None,
        plot_every: int = 0, plot_fn: Callable[[int], Any] | None = None,
        plot_at_end: bool = True,
        checkpoint_metrics_fn: Callable[[int, PyTree], Metrics] | None = None,
        meta_fn: Callable[[int, PyTree], Mapping[str, Any]] | None = None,
        progress_desc: str = "train", key_metrics: Sequence[str] = (),
        hooks: Sequence[Callable[[int, PyTree], PyTree | None]] = (),
        mesh=None) -> tuple[PyTree, str]:
  """Runs steps start_step+1 … num_steps. Returns (state, "done" | "preempted").

  Step numbering: after the k-th call of train_step, `step` = k (the number of completed steps).
  train_step(state, batch) -> (state, metrics) is jitted and donates `state`; its metrics are read
  on the host only at log, eval and checkpoint steps. eval_fn(state, step) -> dict of host
  scalars. hooks(step, state) -> new state or None run after every step (growth, phase changes);
  a hook may also return a new train_step by returning (state, train_step).
  key_metrics: the headline metrics of the progress bar and log line (loss first); by default
  the losses. plot_at_end=False: a finished run's dashboard is left to the caller (which draws
  it after its final evaluation, so it is not drawn twice); a stopped run still draws one.

  On SIGTERM the loop saves the step it stops at (when it has a checkpointer), waits for the
  save, and logs the checkpoint it wrote; a NaN/Inf metric raises NonFiniteError saying which
  checkpoint a rerun resumes from.
  """
  if log_every <= 0:
    raise ValueError(f"log_every={log_every!r} is invalid: allowed an integer > 0")
  try:
    return _run(state, train_step, batch_fn, start_step=start_step, num_steps=num_steps,
                writer=writer, checkpointer=checkpointer, log_every=log_every,
                eval_every=eval_every, eval_fn=eval_fn, plot_every=plot_every, plot_fn=plot_fn,
                plot_at_end=plot_at_end, checkpoint_metrics_fn=checkpoint_metrics_fn, meta_fn=meta_fn,
                progress_desc=progress_desc, key_metrics=key_metrics, hooks=hooks, mesh=mesh)
  except NonFiniteError as e:
    raise NonFiniteError(f"{e}; nothing non-finite was checkpointed; "
                         f"{_checkpoint_note(checkpointer)}") from None


def _run(state, train_step, batch_fn, *, start_step, num_steps, writer, checkpointer, log_every,
         eval_every, eval_fn, plot_every, plot_fn, plot_at_end, checkpoint_metrics_fn, meta_fn, progress_desc,
         key_metrics, hooks, mesh):
  mesh = mesh or sharding_lib.make_mesh()
  bar = progress_lib.Progress(total=num_steps, initial=start_step, desc=progress_desc)
  last_eval: dict[str, float] = {}
  status = "done"
  step = start_step
  pending: list[tuple[int, Any]] = []
  compiling = True  # the next call of train_step compiles it (first step, or a new step function)
  t_last = t_first = None
  step_last = step_first = start_step
  drawn_at = None  # the step of the last dashboard: the end draws one only if it is not this step

  def save(step, state, metrics, force=False):
    if checkpointer is None or not (force or checkpointer.should_save(step)):
      return
    ckpt_metrics = dict(metrics)
    ckpt_metrics.update(last_eval if last_eval.get("_step") == step else {})
    if checkpoint_metrics_fn is not None:
      ckpt_metrics.update(checkpoint_metrics_fn(step, state))
    meta = {"step": step, **(meta_fn(step, state) if meta_fn is not None else {})}
    checkpointer.save(step, state, metrics=ckpt_metrics, meta=meta, force=force)

  with _SigtermFlag() as sigterm, bar:
    while step < num_steps:
      batch = sharding_lib.shard_batch(batch_fn(step), mesh)
      if compiling:
        # A jitted function with nothing in its cache compiles on this call; one whose cache
        # size is unknown (a wrapper) is timed all the same.
        cached = getattr(train_step, "_cache_size", lambda: 0)()
        if not cached:
          bar.note("compiling the train step…")
          logging.info("compiling the train step… (step %d)", step + 1)
        t0 = time.perf_counter()
      state, metrics = train_step(state, batch)
      if compiling:
        jax.block_until_ready(metrics)
        if not cached:
          logging.info("train step compiled and ran once in %.1f s", time.perf_counter() - t0)
          bar.note(None)
        compiling = False
        t_last = t_first = time.perf_counter()
        step_last = step_first = step + 1
      step += 1
      for hook in hooks:
        out = hook(step, state)
        if isinstance(out, tuple):
          state, new_step = out
          compiling = compiling or new_step is not train_step
          train_step = new_step
        elif out is not None:
          state = out
      pending.append((step, metrics))
      # Read the SIGTERM flag once per step: the same value decides the save and the stop, so a
      # signal that lands while this step's metrics are awaited is handled at the next step.
      stopping = sigterm.stop_now(step) and step < num_steps
      is_log = step % log_every == 0 or step == num_steps
      is_eval = eval_fn is not None and eval_every > 0 and (step % eval_every == 0
                                                           or step == num_steps)
      is_ckpt = checkpointer is not None and (checkpointer.should_save(step) or stopping
                                               or step == num_steps)
      host_metrics = None
      if is_log or is_eval or is_ckpt:
        # One host transfer for every step since the last check: the NaN guard names the exact
        # step, and nothing non-finite is ever checkpointed.
        for s_, m_ in zip([s_ for s_, _ in pending], jax.device_get([m_ for _, m_ in pending])):
          host_metrics = {k: float(np.asarray(v)) for k, v in m_.items()}
          try:
            check_finite(s_, host_metrics)
          except NonFiniteError:
            writer.write_scalars(s_, host_metrics)  # the failing step's record (e.g. NaN counts)
            raise
        pending.clear()
      if is_log:
        now = time.perf_counter()
        sps = (step - step_last) / max(now - t_last, 1e-9) if step > step_last else float("nan")
        if step > step_last:  # none right after the compile
          host_metrics["perf/steps_per_sec"] = sps
        mean_rate = (step - step_first) / max(now - t_first, 1e-9)
        eta = (num_steps - step) / mean_rate if step > step_first else float("nan")
        t_last, step_last = now, step
        writer.write_scalars(step, host_metrics)
        shown = {**{k: v for k, v in last_eval.items() if k != "_step"}, **host_metrics}
        keys = headline(shown, key_metrics)
        bar.update(step, {k: shown[k] for k in keys})
        logging.info("step %d/%d (%.0f%%) | %.3g steps/s | ETA %s | %s", step, num_steps,
                     100.0 * step / num_steps, sps, _eta(eta),
                     " ".join(f"{k}={shown[k]:.5g}" for k in keys))
      else:
        bar.update(step)
      if is_eval:
        eval_metrics = dict(eval_fn(state, step))
        check_finite(step, eval_metrics)
        writer.write_scalars(step, eval_metrics)
        logging.info("eval step %d: %s", step,
                     ", ".join(f"{k}={float(v):.5g}" for k, v in eval_metrics.items()))
        last_eval = {**{k: float(v) for k, v in eval_metrics.items()}, "_step": step}
      if is_ckpt:
        save(step, state, host_metrics, force=stopping or step == num_steps)
      # Dashboards at `plot_every` (0: only at the end, as the configs document) and when the run
      # stops; not at every evaluation (a 33-panel dashboard costs ~5 s of the CPU run).
      if plot_fn is not None and ((plot_every > 0 and step % plot_every == 0)
                                  or (step == num_steps and plot_at_end) or stopping):
        plot_fn(step)
        drawn_at = step
      if stopping:
        status = "preempted"
        break
  if checkpointer is not None:
    checkpointer.wait()
  if status == "preempted":
    if checkpointer is None:
      logging.warning("Preempted at step %d; the caller saves it", step)
    elif step in checkpointer.all_steps():
      logging.warning("Preempted: saved step %d (%s/%d); rerun the same command to resume",
                      step, checkpointer.directory, step)
    else:  # Should not happen: say so rather than claim a save.
      logging.error("Preempted at step %d but no checkpoint of it exists (latest: %s)", step,
                    checkpointer.all_steps()[-1:] or "none")
  if plot_fn is not None and drawn_at != step and (plot_at_end or status != "done"):
    # e.g. a rerun of a finished run (no step ran)
    plot_fn(step)
  return state, status
