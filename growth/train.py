"""train_and_evaluate: one growing GPT on the common runtime (checkpoints survive growth).

The run is a chain of fixed-depth segments driven by `common.loop.run`; between segments the
GrowthRun evaluates, checks stagnation and grows. Checkpoints hold the full state (all blocks'
weights, optimizer moments and per-leaf counts, the frontier snapshot history) and the run's
metadata (depth, growth events, stagnation counter), so a resume after a growth event restores
the grown depth: `restore_latest` is given a callable meta -> abstract state of that depth.
"""
from __future__ import annotations

import json
import os

import jax
from absl import logging

from common import checkpoint as ckpt_lib
from common import loop
from common import metrics as metrics_lib
from common import plots
from growth import controller as controller_lib
from growth import data as data_lib


def _save_results(workdir: str, writer, run, final: dict) -> None:
  out = os.path.join(workdir, "results")
  hist = writer.export_history(out)
  events = [(ev["step"], f"grow {ev['depth_before']}->{ev['depth_after']}") for ev in run.events]
  plots.dashboard(hist, os.path.join(out, "dashboard.png"), events=events,
                  title=f"growth: {run.spec.strategy} / {run.trigger}",
                  groups={"loss": ["train/loss", "val/loss", "test/loss"], "depth": ["val/depth"],
                          "tau": ["stagnation/tau"], "kappa": ["stagnation/kappa"],
                          "lr": ["train/lr"], "grad_norm": ["train/grad_norm"]})
  with open(os.path.join(out, "final.json"), "w") as f:
    json.dump(final, f, indent=1)


def train_and_evaluate(config, workdir: str) -> dict:
  """Trains until the FLOP budget is spent; returns the final metrics (also results/final.json)."""
  controller_lib.validate(config)
  data = data_lib.load(config.data)
  evals = data_lib.eval_sets(data, config.data, config.model.seq_len)
  batch_fn = data_lib.batch_fn(data.train, config.data.batch_size, config.model.seq_len,
                               config.seed)
  checkpointer = ckpt_lib.Checkpointer(os.path.join(workdir, "checkpoints"),
                                       save_every=config.train.checkpoint_every,
                                       keep_latest=config.train.keep_checkpoints)
  probe = controller_lib.GrowthRun(config, data.vocab_size)
  state, meta = checkpointer.restore_latest(probe.abstract_state)
  if state is None:
    run = probe
    state = run.initial_state(jax.random.key(config.seed))
    step = 0
  else:
    run = controller_lib.GrowthRun(config, data.vocab_size, meta=meta)
    step = int(meta["step"])
    logging.info("Resumed at step %d, depth %d, %d growth events", step, run.depth,
                 len(run.events))
  writer = metrics_lib.MetricWriter(workdir, config=config, resume_step=step)
  logging.info("budget %.3g FLOPs = %d steps at depth %d; unigram valid ppl %.2f",
               run.budget, run.total_steps(), run.depth, data.unigram_valid_ppl)

  def hook(s, st):
    return run.collect(s, st)

  status = "done"
  last_val = last_test = None
  while step < run.total_steps():
    end = run.next_boundary(step)
    state, status = loop.run(state, run.train_step(step), batch_fn, start_step=step,
                             num_steps=end, writer=writer, checkpointer=None,
                             log_every=config.train.log_every, hooks=(hook,),
                             progress_desc=f"depth {run.depth}")
    if status == "preempted":
      # loop.run stopped at a step boundary before `end`; save exactly there.
      step = int(jax.device_get(state.step))
      checkpointer.save(step, state, meta={"step": step, **run.meta()}, force=True)
      checkpointer.wait()
      logging.warning("Preempted at step %d; rerun the same command to resume", step)
      writer.close()
      return {"status": status, "step": step}
    step = end
    state, metrics, event = run.boundary(step, state, evals)
    if event is not None:
      metrics["growth/depth"] = float(run.depth)
      logging.info("growth at step %d: %s", step, event)
    if metrics:
      writer.write_scalars(step, metrics)
      last_val = metrics.get("val/loss", last_val)
      last_test = metrics.get("test/loss", last_test)
    done = step >= run.total_steps()
    if done or checkpointer.should_save(step) or event is not None:
      checkpointer.save(step, state, meta={"step": step, **run.meta()}, force=True)
    if config.train.plot and (done or checkpointer.should_save(step)):
      _save_results(workdir, writer, run, {})
  checkpointer.wait()
  final = {"status": status, "step": step, "depth": run.depth, "val_loss": last_val,
           "test_loss": last_test,
           "budget_flops": run.budget, "flops_used": run.flops_at(step),
           "unigram_valid_ppl": data.unigram_valid_ppl, "events": run.events,
           "growth_overhead_s": run.overhead_s}
  _save_results(workdir, writer, run, final)
  writer.close()
  checkpointer.close()
  return final
