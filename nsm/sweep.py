"""python -m nsm.sweep: multi-seed target runs, legacy parity runs and the cycle_weight sweep.

Every run is `python -m nsm.main` in a subprocess with its own workdir under --root; a run whose
final_results.json exists is skipped, so the sweep resumes. The table (markdown + JSON) is
rewritten after every run.

  nice python -m nsm.sweep --root runs/nsm_sweep --variant quick --seeds 0,1,2 --parallel 2
  python -m nsm.sweep --root runs/nsm_sweep --table_only
"""
from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import subprocess
import sys
import time

import numpy as np

DOMAINS = ("planning", "causal", "kg")
CYCLE_WEIGHTS = (0.0, 0.01, 0.05, 0.1)


def plan_runs(seeds, cycle_seeds) -> list[dict]:
  """Run order for a CPU-starved machine: planning (3x larger graphs, ~3x the time per step)
  interleaved with the cheap causal/kg runs; target seeds before sweeps."""
  target = lambda d, mode, seed: dict(domain=d, mode=mode, seed=seed, cw=0.01, levels="all",  # noqa: E731
                                      baselines=True)
  cheap = [target(d, mode, s) for s in seeds for d in ("causal", "kg") for mode in ("v2", "legacy")]
  planning = [target("planning", mode, s) for s in seeds for mode in ("v2", "legacy")]
  sweeps = {d: [dict(domain=d, mode="v2", seed=s, cw=cw, levels="all", baselines=False)
                for s in cycle_seeds for cw in CYCLE_WEIGHTS if cw != 0.01]
               + [dict(domain=d, mode="v2", seed=s, cw=0.01, levels="l3", baselines=False)
                  for s in cycle_seeds] for d in DOMAINS}
  runs = planning[:1] + cheap[:6] + planning[1:2] + cheap[6:] + sweeps["causal"] + sweeps["kg"]
  return runs + planning[2:] + sweeps["planning"]


def run_name(r) -> str:
  return f"{r['domain']}_{r['mode']}_cw{r['cw']}_{r['levels']}_s{r['seed']}"


def launch(r, root, variant, log_dir, skip_planning_flat=False) -> tuple[str, float, int]:
  name = run_name(r)
  workdir = os.path.join(root, name)
  if os.path.exists(os.path.join(workdir, "final_results.json")):
    return name, 0.0, 0
  log_path = os.path.join(log_dir, name + ".log")
  if os.path.exists(log_path) and time.time() - os.path.getmtime(log_path) < 300:
    return name, 0.0, -1  # another sweep process is running it right now
  cmd = [sys.executable, "-m", "nsm.main", f"--config=configs/nsm.py:{variant}",
         f"--config.domain={r['domain']}", f"--config.data.mode={r['mode']}",
         f"--config.seed={r['seed']}", f"--config.loss.cycle_weight={r['cw']}",
         # Session-2 tooling: it sweeps the legacy model, the only one readout_levels applies to
         # (kind=hier always reads L3; its cycle sweep is `python -m nsm.experiment`).
         "--config.model.kind=legacy_v2", f"--config.model.readout_levels={r['levels']}",
         f"--config.train.baselines={r['baselines']}", f"--workdir={workdir}"]
  if r["domain"] == "planning" and skip_planning_flat:
    cmd.append("--config.train.flat_epochs=0")
  t = time.time()
  with open(log_path, "w") as log:
    rc = subprocess.call(cmd, stdout=log, stderr=subprocess.STDOUT)
  return name, time.time() - t, rc


def _ms(values) -> str:
  v = np.asarray(values, np.float64) * 100
  return f"{v.mean():.1f} ± {v.std():.1f}" if len(v) > 1 else f"{v.mean():.1f}"


def build_table(root: str) -> str:
  results = {}
  for name in sorted(os.listdir(root)) if os.path.isdir(root) else []:
    path = os.path.join(root, name, "final_results.json")
    if os.path.exists(path):
      with open(path) as f:
        results[name] = json.load(f)
  lines = ["### Target runs (test accuracy %, mean ± std over seeds; cycle_weight 0.01)", "",
           "| domain | mode | seeds | NSM | balanced | max |acc0-acc1| | majority | size-only | "
           "edge types | flat R-GCN |", "|---|---|---|---|---|---|---|---|---|---|"]
  summary = {"targets": {}, "cycle_sweep": {}, "readout_l3": {}}
  for mode in ("v2", "legacy"):
    for d in DOMAINS:
      rs = [r for n, r in results.items() if n.startswith(f"{d}_{mode}_cw0.01_all_s")]
      if not rs:
        continue
      def base(k):
        vals = [r["baselines"][k] for r in rs if k in r.get("baselines", {})]
        return _ms(vals) if vals else "not run"
      gap = max(r["class_gap"] for r in rs)
      lines.append(f"| {d} | {mode} | {len(rs)} | {_ms([r['test_accuracy'] for r in rs])} | "
                   f"{_ms([r['balanced_accuracy'] for r in rs])} | {gap:.2f} | {base('majority')} | "
                   f"{base('size_only')} | {base('edge_types')} | {base('flat_rgcn')} |")
      summary["targets"][f"{d}/{mode}"] = {
          "seeds": len(rs), "test_accuracy": [r["test_accuracy"] for r in rs],
          "balanced_accuracy": [r["balanced_accuracy"] for r in rs], "max_class_gap": gap,
          "baselines": [r.get("baselines") for r in rs]}
  lines += ["", "### cycle_weight sweep (v2, test accuracy % / normalised test cycle loss L1 "
            "retained, dropped)", "", "| domain | cw | seeds | NSM acc | cycle L1 retained | "
            "cycle L1 dropped | flat R-GCN (same seeds) |", "|---|---|---|---|---|---|---|"]
  for d in DOMAINS:
    for cw in CYCLE_WEIGHTS:
      rs = {n: r for n, r in results.items() if n.startswith(f"{d}_v2_cw{cw}_all_s")}
      if not rs:
        continue
      seeds = [n.rsplit("_s", 1)[1] for n in rs]
      flats = [results[f"{d}_v2_cw0.01_all_s{s}"]["baselines"]["flat_rgcn"] for s in seeds
               if "flat_rgcn" in results.get(f"{d}_v2_cw0.01_all_s{s}", {}).get("baselines", {})]
      rv = list(rs.values())
      lines.append(f"| {d} | {cw} | {len(rv)} | {_ms([r['test_accuracy'] for r in rv])} | "
                   f"{np.mean([r['test_cycle']['cycle_l1_retained'] for r in rv]):.2e} | "
                   f"{np.mean([r['test_cycle']['cycle_l1_dropped'] for r in rv]):.3f} | "
                   f"{_ms(flats) if flats else '-'} |")
      summary["cycle_sweep"][f"{d}/{cw}"] = {"seeds": seeds, "test_accuracy": [r["test_accuracy"] for r in rv]}
  lines += ["", "### Readout ablation (v2, cycle_weight 0.01): head on L1+L2+L3 vs L3 only", "",
            "| domain | seeds | all levels | L3 only |", "|---|---|---|---|"]
  for d in DOMAINS:
    l3 = {n.rsplit("_s", 1)[1]: r for n, r in results.items() if n.startswith(f"{d}_v2_cw0.01_l3_s")}
    if not l3:
      continue
    al = [results[f"{d}_v2_cw0.01_all_s{s}"]["test_accuracy"] for s in l3
          if f"{d}_v2_cw0.01_all_s{s}" in results]
    lines.append(f"| {d} | {len(l3)} | {_ms(al) if al else '-'} | "
                 f"{_ms([r['test_accuracy'] for r in l3.values()])} |")
    summary["readout_l3"][d] = {"l3": [r["test_accuracy"] for r in l3.values()], "all": al}
  table = "\n".join(lines) + "\n"
  os.makedirs(root, exist_ok=True)
  with open(os.path.join(root, "sweep_results.md"), "w") as f:
    f.write(table)
  with open(os.path.join(root, "sweep_results.json"), "w") as f:
    json.dump(summary, f, indent=1)
  return table


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--root", default="runs/nsm_sweep")
  p.add_argument("--variant", default="quick")
  p.add_argument("--seeds", default="0,1,2")
  p.add_argument("--cycle_seeds", default="0", help="seeds that also run the cycle_weight sweep")
  p.add_argument("--parallel", type=int, default=1)
  p.add_argument("--table_only", action="store_true")
  p.add_argument("--skip_planning_flat", action="store_true",
                 help="no flat R-GCN baseline on planning (3x the CPU time of causal/kg)")
  args = p.parse_args(argv)
  if not args.table_only:
    seeds = [int(s) for s in args.seeds.split(",")]
    cycle_seeds = [int(s) for s in args.cycle_seeds.split(",") if s]
    runs = plan_runs(seeds, cycle_seeds)
    log_dir = os.path.join(args.root, "logs")
    os.makedirs(log_dir, exist_ok=True)
    with concurrent.futures.ThreadPoolExecutor(args.parallel) as pool:
      futures = [pool.submit(launch, r, args.root, args.variant, log_dir, args.skip_planning_flat)
                 for r in runs]
      for fut in concurrent.futures.as_completed(futures):
        name, secs, rc = fut.result()
        status = {0: "ok", -1: "skipped (running elsewhere)"}.get(rc, f"FAILED rc={rc}")
        print(f"{name}: {status} ({secs:.0f}s)", flush=True)
        build_table(args.root)
  print(build_table(args.root))


if __name__ == "__main__":
  main()
