"""The fair growth comparison: equal training FLOPs, same token stream, fully decayed LR, >= 3 seeds.

  python -m growth.experiment --variant regime --out runs/growth_regime
  python -m growth.experiment --variant quick --out runs/growth_experiment

CPU time (measured, README): `quick` (8 runs x 3 seeds) took 1,469 s wall on the shared 2-core
machine (its CPU time was not recorded); `regime` (11 runs x 5 seeds) CPU time is in the README.
Every loss reported is the held-out test loss; the stagnation trigger reads the validation split.

Every run spends the same training-FLOP budget (budget_steps steps of the fixed target-depth
model, FLOPs integrated over the depth history), reads the same batches (lm_batch(step, seed)),
and has its LR schedule indexed by the budget fraction, so it is fully decayed at the budget.
Runs: fixed target depth; fixed smaller depth; fixed initial depth (1); copy / zero / random /
msg (masked ramp) / geometric at the same scheduled growth steps; G_stack; geometric with the
stagnation trigger, and the controls copy_trigger (trigger vs initialisation) and aiether
(trigger + geometric + isolated training of the new block). Outputs (in --out):
results.json, table.md, loss_vs_flops.png, loss_vs_wallclock.png.
"""
from __future__ import annotations

import argparse
import ast
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
    "stack": {"growth.strategy": "stack", "growth.trigger": "schedule"},
    "msg": {"growth.strategy": "msg", "growth.trigger": "schedule"},
    "geometric_schedule": {"growth.strategy": "geometric", "growth.trigger": "schedule"},
    "geometric_trigger": {"growth.strategy": "geometric", "growth.trigger": "geometry"},
    # controls that separate AIether's parts (initialisation, trigger, isolated training)
    "copy_trigger": {"growth.strategy": "copy", "growth.trigger": "geometry"},
    "aiether": {"growth.strategy": "geometric", "growth.trigger": "geometry",
                "growth.isolated_steps": "ISOLATED"},
}


def variant_config(variant: str):
  """The experiment's base config (the growth config of the same name) and its settings:
  seeds, the fixed_small depth, isolated_steps of the `aiether` run, the default run list."""
  if variant == "smoke":  # a seconds-long check of the pipeline (tests)
    c = growth_configs.get_config("tiny")
    return c, dict(seeds=2, small_depth=2, isolated_steps=5, runs=tuple(RUNS))
  c = growth_configs.get_config(variant)
  if variant in ("regime", "regime_gpu"):
    runs = tuple(n for n in RUNS if n != "random")
    return c, dict(seeds=5, small_depth=2, isolated_steps=c.train.eval_every, runs=runs)
  return c, dict(seeds=3, small_depth=2, isolated_steps=50, runs=tuple(RUNS))


def with_budget(config, budget_steps: int):
  """The config with train.budget_steps = budget_steps and every step count of the growth
  schedule (schedule, warmup/freeze of the trigger, snapshot interval, ramp, evaluation and
  logging intervals) scaled by the same factor, so a larger budget keeps the same protocol."""
  config = config.copy_and_resolve_references()
  f = budget_steps / config.train.budget_steps
  scale = lambda n: max(1, int(round(n * f)))
  config.train.budget_steps = int(budget_steps)
  g, t = config.growth, config.train
  g.schedule_steps = tuple(scale(s) for s in g.schedule_steps)
  for name in ("warmup_steps", "post_growth_freeze_steps", "ramp_steps", "collect_every"):
    g[name] = scale(g[name])
  t.eval_every = t.log_every = scale(t.eval_every)
  t.checkpoint_every = t.eval_every * max(1, round(t.checkpoint_every / t.eval_every))
  return config


def parse_sets(sets: list[str]) -> dict:
  """["data.path=/x", "model.d_model=64"] -> {"data.path": "/x", "model.d_model": 64}."""
  out = {}
  for item in sets:
    if "=" not in item:
      raise SystemExit(f"error: --set {item!r} is invalid: allowed KEY=VALUE, e.g. data.path=/x")
    k, v = item.split("=", 1)
    try:
      out[k] = ast.literal_eval(v)
    except (ValueError, SyntaxError):
      out[k] = v
  return out


def apply_overrides(config, overrides: dict, target: int, small: int, isolated: int = 0):
  config = config.copy_and_resolve_references()
  subst = {"TARGET": target, "SMALL": small, "ISOLATED": isolated}
  for key, value in overrides.items():
    value = subst.get(value, value) if isinstance(value, str) else value
    node = config
    parts = key.split(".")
    for p in parts[:-1]:
      node = node[p]
    node[parts[-1]] = value
  if config.growth.trigger == "none":
    config.growth.max_depth = config.growth.initial_depth
  return config


def run_one(config, data: data_lib.TextData, evals: data_lib.EvalSets, seed: int) -> dict:
  """One run on the budget; returns curves (per evaluation), growth events and timings.

  `val_loss` is what the stagnation trigger saw; `test_loss` (held out) is what is reported.
  """
  run = controller_lib.GrowthRun(config, data.vocab_size)
  state = run.initial_state(jax.random.key(seed))
  batch_fn = data_lib.batch_fn(data.train, config.data.batch_size, config.model.seq_len, seed)
  curve = {"step": [], "flops": [], "wall": [], "val_loss": [], "test_loss": [], "depth": [],
           "tau": [], "kappa": []}
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
    state, metrics, event = run.boundary(step, state, evals)
    if "val/loss" in metrics:
      curve["step"].append(step)
      curve["flops"].append(run.flops_at(step))
      curve["wall"].append(wall + _overhead(run, config))
      curve["val_loss"].append(metrics["val/loss"])
      curve["test_loss"].append(metrics["test/loss"])
      curve["depth"].append(run.depth if event is None else event["depth_before"])
      curve["tau"].append(metrics["stagnation/tau"])
      curve["kappa"].append(metrics["stagnation/kappa"])
    if event is not None:
      after = controller_lib.steps.evaluate(state.params, run.model_cfg, evals.test,
                                            run.block_mix(step, state))
      spikes.append({"step": step, "before": metrics.get("test/loss"), "after": after,
                     "depth_after": event["depth_after"]})
  return {"curve": curve, "train_curve": train_curve, "events": run.events, "spikes": spikes,
          "final_test_loss": curve["test_loss"][-1], "final_val_loss": curve["val_loss"][-1],
          "steps": step, "flops": run.flops_at(step), "budget": run.budget,
          "train_wall_s": wall, "overhead_s": _overhead(run, config), "compile_s": compile_s,
          "final_depth": run.depth}


_SEEN: set = set()


def _overhead(run, config) -> float:
  """Growth-method wall-clock: snapshots + tau/kappa + growth for geometric, growth op otherwise."""
  if config.growth.strategy == "geometric" and config.growth.trigger != "none":
    return run.overhead_s
  return float(sum(ev["seconds"] for ev in run.events))


def main(argv=None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--variant", default="quick", help="quick | medium | regime | regime_gpu | "
                      "full | smoke")
  parser.add_argument("--out", default="runs/growth_experiment")
  parser.add_argument("--seeds", type=int, default=0, help="override the variant's seed count")
  parser.add_argument("--runs", default="", help="comma-separated subset of " + ",".join(RUNS))
  parser.add_argument("--budget_steps", type=int, default=0,
                      help="budget in target-model steps (0 = the variant's); the growth "
                      "schedule scales with it (with_budget)")
  parser.add_argument("--set", action="append", default=[],
                      help="config override KEY=VALUE, e.g. --set data.path=/data/wikitext-103")
  parser.add_argument("--resume", action="store_true",
                      help="keep the (run, seed) results already in OUT/results.json")
  args = parser.parse_args(argv)
  base, settings = variant_config(args.variant)
  base = apply_overrides(base, parse_sets(args.set), 0, 0)
  if args.budget_steps:
    base = with_budget(base, args.budget_steps)
    settings["isolated_steps"] = base.train.eval_every
  seeds = args.seeds or settings["seeds"]
  names = args.runs.split(",") if args.runs else list(settings["runs"])
  for n in names:
    if n not in RUNS:
      raise SystemExit(f"error: --runs entry {n!r} is invalid: allowed {list(RUNS)}")
  data = data_lib.load(base.data)
  evals = data_lib.eval_sets(data, base.data, base.model.seq_len)
  os.makedirs(args.out, exist_ok=True)
  path = os.path.join(args.out, "results.json")
  results = {"variant": args.variant, "seeds": seeds, "config": base.to_dict(),
             "unigram_valid_ppl": data.unigram_valid_ppl, "runs": {}, "cpu_s": 0.0,
             "total_wall_s": 0.0}
  if args.resume and os.path.exists(path):
    with open(path) as f:
      prev = json.load(f)
    results["runs"] = {k: v for k, v in prev["runs"].items() if k in names}
    results["cpu_s"], results["total_wall_s"] = prev.get("cpu_s", 0.0), prev.get("total_wall_s", 0.0)
  t0, cpu0 = time.perf_counter(), _cpu_s()
  wall0, cpu_prev = results["total_wall_s"], results["cpu_s"]
  for seed in range(seeds):
    for name in names:
      if len(results["runs"].get(name, [])) > seed:
        continue
      cfg = apply_overrides(base, RUNS[name], base.train.target_depth, settings["small_depth"],
                            settings["isolated_steps"])
      r = run_one(cfg, data, evals, seed)
      results["runs"].setdefault(name, []).append(r)
      results["total_wall_s"] = wall0 + time.perf_counter() - t0
      results["cpu_s"] = cpu_prev + _cpu_s() - cpu0  # process CPU time (contention-independent)
      print(f"[{time.perf_counter() - t0:7.1f}s] seed {seed} {name:20s} final test "
            f"{r['final_test_loss']:.4f} depth {r['final_depth']} steps {r['steps']} "
            f"events {[e['step'] for e in r['events']]} train {r['train_wall_s']:.1f}s "
            f"load {os.getloadavg()[0]:.2f}", flush=True)
      with open(path, "w") as f:
        json.dump(results, f)
  summary = report.summarize(results)
  results["summary"] = summary
  with open(path, "w") as f:
    json.dump(results, f)
  with open(os.path.join(args.out, "table.md"), "w") as f:
    f.write(report.markdown(results))
  report.plot(results, args.out)
  print(report.markdown(results))
  return results


def _cpu_s() -> float:
  ru = resource.getrusage(resource.RUSAGE_SELF)
  return ru.ru_utime + ru.ru_stime


if __name__ == "__main__":
  main()
