"""The fair growth comparison: equal training FLOPs, same token stream, fully decayed LR, >= 3 seeds.

  python -m growth.experiment --variant quick --out runs/growth_experiment   (CPU, < 10 min)

Every run spends the same training-FLOP budget (budget_steps steps of the fixed target-depth
model, FLOPs integrated over the depth history), reads the same batches (lm_batch(step, seed)),
and has its LR schedule indexed by the budget fraction, so it is fully decayed at the budget.
Runs: fixed target depth; fixed smaller depth; fixed initial depth (1); copy / zero / random / geometric at the same
scheduled growth steps; geometric with the stagnation trigger; G_stack. Outputs (in --out):
results.json, table.md, loss_vs_flops.png, loss_vs_wallclock.png.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import time

import jax
import numpy as np

from configs import growth as growth_configs
from growth import controller as controller_lib
from growth import data as data_lib
from growth import report

RUNS = {  # name -> config overrides (on top of the variant's config)
    "fixed_target": {"growth.trigger": "none", "growth.initial_depth": "TARGET"},
    "fixed_small": {"growth.trigger": "none", "growth.initial_depth": "SMALL",
                    "growth.max_depth": "SMALL"},
    "fixed_initial": {"growth.trigger": "none"},  # the growing runs' starting depth, never grown
    "copy": {"growth.strategy": "copy", "growth.trigger": "schedule"},
    "zero": {"growth.strategy": "zero", "growth.trigger": "schedule"},
    "random": {"growth.strategy": "random", "growth.trigger": "schedule"},
    "geometric_schedule": {"growth.strategy": "geometric", "growth.trigger": "schedule"},
    "geometric_trigger": {"growth.strategy": "geometric", "growth.trigger": "geometry"},
    "stack": {"growth.strategy": "stack", "growth.trigger": "schedule"},
}


def variant_config(variant: str):
  """The experiment's base config: the growth config of the same name, plus its settings."""
  if variant == "smoke":  # a seconds-long check of the pipeline (tests)
    c = growth_configs.get_config("tiny")
    return c, dict(seeds=2, small_depth=2)
  c = growth_configs.get_config(variant)
  return c, dict(seeds=3, small_depth=2)


def apply_overrides(config, overrides: dict, target: int, small: int):
  config = config.copy_and_resolve_references()
  for key, value in overrides.items():
    value = {"TARGET": target, "SMALL": small}.get(value, value) if isinstance(value, str) else value
    node = config
    parts = key.split(".")
    for p in parts[:-1]:
      node = node[p]
    node[parts[-1]] = value
  if config.growth.trigger == "none":
    config.growth.max_depth = config.growth.initial_depth
  return config


def run_one(config, data: data_lib.TextData, eval_batches, seed: int) -> dict:
  """One run on the budget; returns curves (per evaluation), growth events and timings."""
  run = controller_lib.GrowthRun(config, data.vocab_size)
  state = run.initial_state(jax.random.key(seed))
  batch_fn = data_lib.batch_fn(data.train, config.data.batch_size, config.model.seq_len, seed)
  curve = {"step": [], "flops": [], "wall": [], "val_loss": [], "depth": [], "tau": [],
           "kappa": []}
  train_curve = {"step": [], "loss": []}
  spikes = []
  step, wall, compile_s = 0, 0.0, 0.0
  pending = []
  while step < run.total_steps():
    end = run.next_boundary(step)
    fn = run.train_step(step)
    for s in range(step, end):
      batch = batch_fn(s)
      t = time.perf_counter()
      state, metrics = fn(state, batch)
      jax.block_until_ready(metrics["train/loss"])
      dt = time.perf_counter() - t
      if s == step and fn not in _SEEN:  # first call compiles: time it apart
        _SEEN.add(fn)
        compile_s += dt
        dt = None
      pending.append(dt)
      state = run.collect(s + 1, state)
      if (s + 1) % config.train.log_every == 0:
        train_curve["step"].append(s + 1)
        train_curve["loss"].append(float(metrics["train/loss"]))
    known = [d for d in pending if d is not None]
    fill = float(np.median(known)) if known else 0.0
    wall += sum(fill if d is None else d for d in pending)
    pending = []
    step = end
    state, metrics, event = run.boundary(step, state, eval_batches)
    if "val/loss" in metrics:
      curve["step"].append(step)
      curve["flops"].append(run.flops_at(step))
      curve["wall"].append(wall + _overhead(run, config))
      curve["val_loss"].append(metrics["val/loss"])
      curve["depth"].append(run.depth if event is None else event["depth_before"])
      curve["tau"].append(metrics["stagnation/tau"])
      curve["kappa"].append(metrics["stagnation/kappa"])
    if event is not None:
      after = controller_lib.steps.evaluate(state.params, run.model_cfg, eval_batches)
      spikes.append({"step": step, "before": metrics.get("val/loss"), "after": after,
                     "depth_after": event["depth_after"]})
  return {"curve": curve, "train_curve": train_curve, "events": run.events, "spikes": spikes,
          "final_val_loss": curve["val_loss"][-1], "steps": step, "flops": run.flops_at(step),
          "budget": run.budget, "train_wall_s": wall, "overhead_s": _overhead(run, config),
          "compile_s": compile_s, "final_depth": run.depth}


_SEEN: set = set()


def _overhead(run, config) -> float:
  """Growth-method wall-clock: snapshots + tau/kappa + growth for geometric, growth op otherwise."""
  if config.growth.strategy == "geometric" and config.growth.trigger != "none":
    return run.overhead_s
  return float(sum(ev["seconds"] for ev in run.events))


def main(argv=None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--variant", default="quick", help="quick | medium | full | smoke")
  parser.add_argument("--out", default="runs/growth_experiment")
  parser.add_argument("--seeds", type=int, default=0, help="override the variant's seed count")
  parser.add_argument("--runs", default="", help="comma-separated subset of " + ",".join(RUNS))
  args = parser.parse_args(argv)
  base, settings = variant_config(args.variant)
  seeds = args.seeds or settings["seeds"]
  names = [n for n in (args.runs.split(",") if args.runs else RUNS)]
  for n in names:
    if n not in RUNS:
      raise SystemExit(f"error: --runs entry {n!r} is invalid: allowed {list(RUNS)}")
  data = data_lib.load(base.data)
  eval_batches = data_lib.eval_set(data.valid, base.data.batch_size, base.model.seq_len,
                                   base.data.eval_batches)
  os.makedirs(args.out, exist_ok=True)
  results = {"variant": args.variant, "seeds": seeds, "config": base.to_dict(),
             "unigram_valid_ppl": data.unigram_valid_ppl, "runs": {}}
  t0 = time.perf_counter()
  for seed in range(seeds):
    for name in names:
      cfg = apply_overrides(base, RUNS[name], base.train.target_depth, settings["small_depth"])
      r = run_one(cfg, data, eval_batches, seed)
      results["runs"].setdefault(name, []).append(r)
      print(f"[{time.perf_counter() - t0:7.1f}s] seed {seed} {name:20s} final val "
            f"{r['final_val_loss']:.4f} depth {r['final_depth']} steps {r['steps']} "
            f"events {[e['step'] for e in r['events']]} train {r['train_wall_s']:.1f}s", flush=True)
      with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(results, f)
  results["total_wall_s"] = time.perf_counter() - t0
  ru = resource.getrusage(resource.RUSAGE_SELF)
  results["cpu_s"] = ru.ru_utime + ru.ru_stime  # process CPU time (contention-independent)
  summary = report.summarize(results)
  results["summary"] = summary
  with open(os.path.join(args.out, "results.json"), "w") as f:
    json.dump(results, f)
  with open(os.path.join(args.out, "table.md"), "w") as f:
    f.write(report.markdown(results))
  report.plot(results, args.out)
  print(report.markdown(results))
  return results


if __name__ == "__main__":
  main()
