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
import numpy as np
from absl import logging

from common import progress as progress_lib
from common import sharding as sharding_lib

PyTree = Any
Metrics = Mapping[str, Any]


class NonFiniteError(FloatingPointError):
  """A metric became NaN/Inf; the run stops and the last good checkpoint is kept."""


def jit_train_step(fn: Callable, mesh=None) -> Callable:
  """jit(fn, donate_argnums=0) with replicated state and a batch sharded over ("data",)."""
  if mesh is None:
    mesh = sharding_lib.make_mesh()
  rep = sharding_lib.replicated(mesh)
  return jax.jit(fn, in_shardings=(rep, sharding_lib.batch_sharding(mesh)),
                 out_shardings=(rep, rep), donate_argnums=0)


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
    return jax.device_put(init_fn(), rep), {}, 0
  start = int(meta["step"]) if "step" in meta else int(jax.device_get(state.step))
  logging.info("Resuming from step %d", start)
  return state, meta, start


def check_finite(step: int, metrics: Mapping[str, Any]) -> None:
  for name, value in metrics.items():
    v = np.asarray(value)
    if v.dtype.kind in "fc" and not np.all(np.isfinite(v)):
      raise NonFiniteError(
          f"metric {name!r} is {v.tolist()} at step {step}: stopping; the last good checkpoint is "
          "kept (lower the learning rate or inspect the data and resume)")


class _SigtermFlag:
  """Records SIGTERM (batch-queue preemption) so the loop can save at the next step boundary."""

  def __init__(self):
    self.set = False
    self._previous = None

  def __enter__(self):
    if threading.current_thread() is threading.main_thread():
      self._previous = signal.signal(signal.SIGTERM, self._handle)
    return self

  def _handle(self, signum, frame):
    logging.warning("SIGTERM received: saving at the next step boundary, then exiting")
    self.set = True

  def __exit__(self, *exc):
    if self._previous is not None:
      signal.signal(signal.SIGTERM, self._previous)


def run(state: PyTree, train_step: Callable, batch_fn: Callable[[int], PyTree], *,
        start_step: int, num_steps: int, writer, checkpointer=None, log_every: int = 100,
        eval_every: int = 0, eval_fn: Callable[[PyTree, int], Metrics] | None = None,
        plot_every: int = 0, plot_fn: Callable[[int], Any] | None = None,
        checkpoint_metrics_fn: Callable[[int, PyTree], Metrics] | None = None,
        meta_fn: Callable[[int, PyTree], Mapping[str, Any]] | None = None,
        progress_desc: str = "train",
        hooks: Sequence[Callable[[int, PyTree], PyTree | None]] = (),
        mesh=None) -> tuple[PyTree, str]:
  """Runs steps start_step+1 … num_steps. Returns (state, "done" | "preempted").

  Step numbering: after the k-th call of train_step, `step` = k (the number of completed steps).
  train_step(state, batch) -> (state, metrics) is jitted and donates `state`; its metrics are read
  on the host only at log, eval and checkpoint steps. eval_fn(state, step) -> dict of host
  scalars. hooks(step, state) -> new state or None run after every step (growth, phase changes);
  a hook may also return a new train_step by returning (state, train_step).
  """
  if log_every <= 0:
    raise ValueError(f"log_every={log_every!r} is invalid: allowed an integer > 0")
  mesh = mesh or sharding_lib.make_mesh()
  bar = progress_lib.Progress(total=num_steps, initial=start_step, desc=progress_desc)
  last_eval: dict[str, float] = {}
  t_last, step_last = time.perf_counter(), start_step
  status = "done"
  step = start_step
  pending: list[tuple[int, Any]] = []

  def save(step, state, metrics, force=False):
    if checkpointer is None or not (force or checkpointer.should_save(step)):
      return
    ckpt_metrics = dict(metrics)
    ckpt_metrics.update(last_eval if last_eval.get("_step") == step else {})
    if checkpoint_metrics_fn is not None:
      ckpt_metrics.update(checkpoint_metrics_fn(step, state))
    meta = {"step": step, **(meta_fn(step, state) if meta_fn is not None else {})}
    checkpointer.save(step, state, metrics=ckpt_metrics, meta=meta, force=force)

  with _SigtermFlag() as sigterm:
    while step < num_steps:
      batch = sharding_lib.shard_batch(batch_fn(step), mesh)
      state, metrics = train_step(state, batch)
      step += 1
      for hook in hooks:
        out = hook(step, state)
        if isinstance(out, tuple):
          state, train_step = out
        elif out is not None:
          state = out
      pending.append((step, metrics))
      is_log = step % log_every == 0 or step == num_steps
      is_eval = eval_fn is not None and eval_every > 0 and (step % eval_every == 0
                                                           or step == num_steps)
      is_ckpt = checkpointer is not None and (checkpointer.should_save(step) or sigterm.set
                                               or step == num_steps)
      host_metrics = None
      if is_log or is_eval or is_ckpt:
        # One host transfer for every step since the last check: the NaN guard names the exact
        # step, and nothing non-finite is ever checkpointed.
        for s_, m_ in zip([s_ for s_, _ in pending], jax.device_get([m_ for _, m_ in pending])):
          host_metrics = {k: float(np.asarray(v)) for k, v in m_.items()}
          check_finite(s_, host_metrics)
        pending.clear()
      if is_log:
        now = time.perf_counter()
        host_metrics["perf/steps_per_sec"] = (step - step_last) / max(now - t_last, 1e-9)
        t_last, step_last = now, step
        writer.write_scalars(step, host_metrics)
        bar.update(step, host_metrics)
        logging.info("step %d: %s", step, ", ".join(
            f"{k}={v:.5g}" for k, v in host_metrics.items() if math.isfinite(v)))
      else:
        bar.update(step)
      if is_eval:
        eval_metrics = dict(eval_fn(state, step))
        check_finite(step, eval_metrics)
        writer.write_scalars(step, eval_metrics)
        logging.info("eval step %d: %s", step,
                     ", ".join(f"{k}={float(v):.5g}" for k, v in eval_metrics.items()))
        last_eval = {**eval_metrics, "_step": step}
      if is_ckpt:
        save(step, state, host_metrics, force=sigterm.set or step == num_steps)
      if plot_fn is not None and ((plot_every > 0 and step % plot_every == 0) or is_eval):
        plot_fn(step)
      if sigterm.set and step < num_steps:
        status = "preempted"
        logging.warning("Preempted: saved step %d; rerun the same command to resume", step)
        break
  bar.close()
  if checkpointer is not None:
    checkpointer.wait()
  if plot_fn is not None:
    plot_fn(step)
  return state, status
