"""The regime sweep: fixed depths x FLOP budgets on one corpus, to find where depth pays.

  python -m growth.sweep --variant regime --depths 1,2,4,8 --budgets 200,400,800 --seeds 3 \
      --out runs/growth_sweep

Every (depth, budget, seed) run trains a fixed-depth model for the same training-FLOP budget
(budgets in steps of the target-depth model, `train.target_depth`), with the LR schedule fully
decayed at that budget, the same token stream per seed, and reports the held-out *test* loss.
The regime budget is the smallest budget at which the target depth's final test loss beats every
shallower depth with a paired (same seed) 95 % t-interval that excludes 0. Results are written to
OUT/sweep.json after every run (rerun the same command to continue a cut-off sweep), then
OUT/sweep_table.md, OUT/sweep_loss_vs_flops.png.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402

from growth import data as data_lib  # noqa: E402
from growth import experiment  # noqa: E402
from growth import model as model_lib  # noqa: E402
from growth import report  # noqa: E402


def fixed_config(base, depth: int, budget_steps: int, evals_per_run: int):
  """The base config as a fixed-depth run on `budget_steps` target-model steps of FLOPs."""
  cfg = experiment.apply_overrides(base, {"growth.trigger": "none",
                                          "growth.initial_depth": depth}, 0, 0)
  cfg.train.budget_steps = int(budget_steps)
  mc = model_lib.GPTConfig.from_config(cfg.model, 256)
  ratio = (model_lib.train_flops_per_token(mc, cfg.train.target_depth)
           / model_lib.train_flops_per_token(mc, depth))
  steps = math.ceil(budget_steps * ratio)
  every = max(10, int(round(steps / evals_per_run / 10.0)) * 10)
  cfg.train.eval_every = cfg.train.checkpoint_every = cfg.train.log_every = every
  return cfg


def key(depth: int, budget: int, seed: int) -> str:
  return f"d{depth}_b{budget}_s{seed}"


def merge_fixed_runs(sweep: dict, results: dict) -> list[str]:
  """Adds an experiment's fixed-depth runs (same model, data and budget) as sweep runs.

  A run whose key the sweep already holds must agree with it (same seed, same configuration ->
  the same final test loss); returns the keys added.
  """
  cfg = results["config"]
  budget = cfg["train"]["budget_steps"]
  depths = {"fixed_target": cfg["train"]["target_depth"], "fixed_initial":
            cfg["growth"]["initial_depth"], "fixed_small": 2}
  added = []
  for name, d in depths.items():
    for seed, r in enumerate(results["runs"].get(name, [])):
      k = key(d, budget, seed)
      if k in sweep["runs"]:
        old = sweep["runs"][k]["final_test_loss"]
        if abs(old - r["final_test_loss"]) > 1e-6:
          raise ValueError(f"{k}: sweep {old} != experiment {r['final_test_loss']}")
        continue
      sweep["runs"][k] = dict(r, depth=d, budget_steps=budget, seed=seed, merged=True)
      added.append(k)
  return added


def summarize(sweep: dict) -> dict:
  """Per budget: mean ± 95 % CI per depth, paired differences target - shallower, regime."""
  target = sweep["target_depth"]
  out = {"budgets": {}, "regime_budget": None}
  for b in sweep["budgets"]:
    per = {}
    for d in sweep["depths"]:
      rs = [sweep["runs"][k] for k in sorted(sweep["runs"]) if k.startswith(f"d{d}_b{b}_")]
      if rs:
        m, sd, hw = report.ci95([r["final_test_loss"] for r in rs])
        per[d] = {"mean": m, "std": sd, "ci95": hw, "n": len(rs), "flops": rs[0]["budget"],
                  "seeds": [r["seed"] for r in rs]}
    paired = {}
    for d in sweep["depths"]:
      if d >= target or d not in per or target not in per:
        continue
      seeds = sorted(set(per[d]["seeds"]) & set(per[target]["seeds"]))
      if len(seeds) < 2:
        continue
      diff = [sweep["runs"][key(target, b, s)]["final_test_loss"]
              - sweep["runs"][key(d, b, s)]["final_test_loss"] for s in seeds]
      m, sd, hw = report.ci95(diff)
      paired[d] = {"mean": m, "ci95": hw, "n": len(seeds), "target_better": bool(m + hw < 0)}
    best = min(per, key=lambda d: per[d]["mean"]) if per else None
    ok = bool(paired) and all(p["target_better"] for p in paired.values()) and all(
        d in paired for d in sweep["depths"] if d < target)
    out["budgets"][b] = {"depths": per, "paired": paired, "best_depth": best,
                         "target_is_best": ok}
    if ok and out["regime_budget"] is None:
      out["regime_budget"] = b
  return out


def markdown(sweep: dict, summary: dict) -> str:
  t = sweep["target_depth"]
  head = ["| budget (depth-%d steps) | FLOPs |" % t] + [f" depth {d} |" for d in sweep["depths"]]
  lines = ["".join(head), "|---|---|" + "---|" * len(sweep["depths"])]
  for b, e in summary["budgets"].items():
    row = f"| {b} | {next(iter(e['depths'].values()))['flops']:.2e} |"
    for d in sweep["depths"]:
      x = e["depths"].get(d)
      cell = "–" if x is None else f" {x['mean']:.4f} ± {report._fmt(x['ci95'])} (n={x['n']})"
      if d == e["best_depth"]:
        cell = f" **{cell.strip()}**"
      row += cell + " |"
    lines.append(row)
  lines += ["", f"Paired differences, depth {t} − shallower depth (same seed), final test loss; "
            "mean ± 95 % CI:", "",
            "| budget | " + " | ".join(f"{t} − {d}" for d in sweep["depths"] if d < t)
            + " | depth %d best (all CIs < 0) |" % t,
            "|---|" + "---|" * (len([d for d in sweep["depths"] if d < t]) + 1)]
  for b, e in summary["budgets"].items():
    cells = []
    for d in sweep["depths"]:
      if d < t:
        p = e["paired"].get(d)
        cells.append("–" if p is None else f"{p['mean']:+.4f} ± {report._fmt(p['ci95'])}")
    lines.append(f"| {b} | " + " | ".join(cells) + f" | {'yes' if e['target_is_best'] else 'no'} |")
  lines.append(f"\nRegime budget (smallest where depth {t} is the best fixed model): "
               f"{summary['regime_budget']}. Sweep CPU time {sweep.get('cpu_s', 0):.0f} s, "
               f"wall {sweep.get('wall_s', 0):.0f} s.")
  return "\n".join(lines) + "\n"


def plot(sweep: dict, summary: dict, path: str) -> str:
  fig, axes = plt.subplots(1, 2, figsize=(12, 4.4))
  colors = dict(zip(sweep["depths"], plt.rcParams["axes.prop_cycle"].by_key()["color"]))
  budgets = sweep["budgets"]
  for b_i, b in enumerate(budgets):
    for d in sweep["depths"]:
      rs = [r for k, r in sweep["runs"].items() if k.startswith(f"d{d}_b{b}_")]
      if not rs:
        continue
      lo = max(r["curve"]["flops"][0] for r in rs)
      x = np.geomspace(lo, rs[0]["budget"], 40)  # runs may have different evaluation grids
      y = np.mean([np.interp(x, r["curve"]["flops"], r["curve"]["test_loss"]) for r in rs], 0)
      axes[0].plot(x, y, color=colors[d], alpha=0.35 + 0.65 * (b_i + 1) / len(budgets), lw=1.2,
                   label=f"depth {d}" if b_i == len(budgets) - 1 else None)
  axes[0].set_xscale("log")
  axes[0].set_xlabel("training FLOPs")
  axes[0].set_ylabel("test loss (nats/byte)")
  axes[0].set_title("test-loss curves, one per (depth, budget); mean over seeds")
  axes[0].legend(fontsize=8)
  finals = [r["final_test_loss"] for r in sweep["runs"].values()]
  axes[0].set_ylim(min(finals) - 0.05, min(finals) + 1.0)
  for d in sweep["depths"]:
    pts = [(e["depths"][d]["flops"], e["depths"][d]["mean"], e["depths"][d]["ci95"])
           for e in summary["budgets"].values() if d in e["depths"]]
    if pts:
      x, y, hw = map(np.asarray, zip(*pts))
      axes[1].errorbar(x, y, yerr=np.nan_to_num(hw), color=colors[d], marker="o", capsize=3,
                       label=f"depth {d}")
  axes[1].set_xscale("log")
  axes[1].set_xlabel("training-FLOP budget (LR fully decayed at the budget)")
  axes[1].set_ylabel("final test loss (mean ± 95 % CI)")
  rb = summary["regime_budget"]
  axes[1].set_title(f"depth {sweep['target_depth']} best from {rb} depth-{sweep['target_depth']} "
                    "steps on" if rb else f"depth {sweep['target_depth']} is never the best "
                    "fixed depth here")
  axes[1].legend(fontsize=8)
  for ax in axes:
    ax.grid(alpha=0.3)
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
  fig.tight_layout()
  fig.savefig(path, dpi=90)
  plt.close(fig)
  return path


def main(argv=None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--variant", default="regime")
  parser.add_argument("--depths", default="1,2,4,8")
  parser.add_argument("--budgets", default="200,400,800", help="in target-depth model steps")
  parser.add_argument("--seeds", type=int, default=3)
  parser.add_argument("--evals_per_run", type=int, default=12)
  parser.add_argument("--out", default="runs/growth_sweep")
  parser.add_argument("--set", action="append", default=[],
                      help="config override KEY=VALUE, e.g. --set data.path=/data/wikitext-103")
  parser.add_argument("--summary_only", action="store_true",
                      help="rewrite the table and figure from OUT/sweep.json; train nothing")
  parser.add_argument("--merge_fixed", default="",
                      help="with --summary_only: growth.experiment results.json whose fixed runs "
                      "(fixed_target / fixed_small / fixed_initial, same config and budget) are "
                      "added as extra seeds")
  args = parser.parse_args(argv)
  path = os.path.join(args.out, "sweep.json")
  if args.summary_only:
    with open(path) as f:
      sweep = json.load(f)
    if args.merge_fixed:
      with open(args.merge_fixed) as f:
        merge_fixed_runs(sweep, json.load(f))
    return _finish(sweep, args.out)
  base, _ = experiment.variant_config(args.variant)
  base = experiment.apply_overrides(base, experiment.parse_sets(args.set), 0, 0)
  depths = [int(x) for x in args.depths.split(",")]
  budgets = [int(x) for x in args.budgets.split(",")]
  data = data_lib.load(base.data)
  evals = data_lib.eval_sets(data, base.data, base.model.seq_len)
  os.makedirs(args.out, exist_ok=True)
  sweep = {"variant": args.variant, "depths": depths, "budgets": budgets,
           "target_depth": base.train.target_depth, "config": base.to_dict(),
           "train_tokens": int(len(data.train)), "test_tokens_per_eval":
           int(sum(y.size for _, y in evals.test)), "runs": {}, "cpu_s": 0.0, "wall_s": 0.0}
  if os.path.exists(path):
    with open(path) as f:
      prev = json.load(f)
    sweep["runs"], sweep["cpu_s"], sweep["wall_s"] = prev["runs"], prev["cpu_s"], prev["wall_s"]
  t0, c0 = time.perf_counter(), experiment._cpu_s()
  wall0, cpu0 = sweep["wall_s"], sweep["cpu_s"]
  for seed in range(args.seeds):
    for b in budgets:
      for d in depths:
        k = key(d, b, seed)
        if k in sweep["runs"]:
          continue
        cfg = fixed_config(base, d, b, args.evals_per_run)
        r = experiment.run_one(cfg, data, evals, seed)
        r.pop("train_curve", None)
        r.update(depth=d, budget_steps=b, seed=seed,
                 tokens=r["steps"] * cfg.data.batch_size * cfg.model.seq_len)
        sweep["runs"][k] = r
        sweep["wall_s"] = wall0 + time.perf_counter() - t0
        sweep["cpu_s"] = cpu0 + experiment._cpu_s() - c0
        print(f"[{time.perf_counter() - t0:7.1f}s] {k:14s} test {r['final_test_loss']:.4f} "
              f"steps {r['steps']} tokens/train {r['tokens'] / len(data.train):.2f} "
              f"train {r['train_wall_s']:.1f}s load {os.getloadavg()[0]:.2f}", flush=True)
        with open(path, "w") as f:
          json.dump(sweep, f)
  return _finish(sweep, args.out)


def _finish(sweep: dict, out: str) -> dict:
  summary = summarize(sweep)
  sweep["summary"] = summary
  with open(os.path.join(out, "sweep.json"), "w") as f:
    json.dump(sweep, f)
  table = markdown(sweep, summary)
  with open(os.path.join(out, "sweep_table.md"), "w") as f:
    f.write(table)
  plot(sweep, summary, os.path.join(out, "sweep_loss_vs_flops.png"))
  print(table)
  return sweep


if __name__ == "__main__":
  main()
