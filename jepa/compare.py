"""python -m jepa.compare: hierarchical vs flat (or any set of runs), mean ± std over seeds.

Groups `<workdir>/results/final_results.json` by the hierarchy (kind + level weights) and prints a
markdown table of the probe accuracies and effective ranks, mean ± sample std over the runs of
each group, plus the per-seed rows; writes the same as JSON.

  for s in 0 1 2; do for w in "(1.0,0.5,0.25)" "(1.0,)"; do
    python -m jepa.main --config configs/jepa.py:quick --config.seed=$s \
      --config.hierarchy.weights="$w" --workdir runs/jepa_seeds/w${#w}_s$s; done; done
  python -m jepa.compare --workdirs runs/jepa_seeds/* --out runs/jepa_seeds/compare.json
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

METRICS = ("linear_probe_accuracy", "knn_accuracy", "random_init_linear_probe_accuracy",
           "random_init_knn_accuracy", "pixel_linear_probe_accuracy")


def load(workdir: str) -> dict:
  path = os.path.join(workdir, "results", "final_results.json")
  if not os.path.exists(path):
    raise FileNotFoundError(f"--workdirs: {workdir!r} has no results/final_results.json "
                            "(the run has not finished)")
  with open(path) as f:
    res = json.load(f)
  cfg_path = os.path.join(workdir, "config.json")
  seed = None
  if os.path.exists(cfg_path):
    with open(cfg_path) as f:
      seed = json.load(f).get("seed")
  res["_workdir"], res["_seed"] = workdir, seed
  return res


def group_name(res: dict) -> str:
  weights = res.get("hierarchy_weights", [])
  label = "flat (I-JEPA)" if len(weights) == 1 else f"hierarchical ({len(weights)} levels)"
  return f"{label}, {res.get('hierarchy', '?')} {tuple(weights)}"


def summarise(runs: list[dict]) -> dict:
  """{group: {metric: (mean, std, n)}} with std the sample std (ddof = 1; 0 for one run)."""
  groups: dict[str, list[dict]] = {}
  for r in runs:
    groups.setdefault(group_name(r), []).append(r)
  out = {}
  for name, rs in groups.items():
    row = {}
    for m in METRICS + ("effective_rank_level_0", "effective_rank_pooled"):
      if m.startswith("effective_rank_"):
        vals = [r["effective_rank"][m[len("effective_rank_"):]] for r in rs]
      else:
        vals = [r[m] for r in rs]
      vals = np.asarray(vals, np.float64)
      row[m] = (float(vals.mean()), float(vals.std(ddof=1)) if len(vals) > 1 else 0.0, len(vals))
    row["seeds"] = [r["_seed"] for r in rs]
    out[name] = row
  return out


def markdown(summary: dict, runs: list[dict]) -> str:
  pct = lambda mean, std: f"{100 * mean:.1f} ± {100 * std:.1f}"  # noqa: E731
  lines = ["| variant | seeds | linear probe % | k-NN % | random-init LP % | random-init k-NN % | "
           "pixels LP % | eff. rank level 0 | eff. rank pooled |", "|---|---|---|---|---|---|---|---|---|"]
  for name, row in summary.items():
    cells = [pct(*row[m][:2]) for m in METRICS]
    cells += [f"{row[m][0]:.2f} ± {row[m][1]:.2f}" for m in ("effective_rank_level_0", "effective_rank_pooled")]
    lines.append(f"| {name} | {len(row['seeds'])} | " + " | ".join(cells) + " |")
  lines += ["", "| run | seed | linear probe % | k-NN % | random-init LP % | random-init k-NN % |",
            "|---|---|---|---|---|---|"]
  for r in runs:
    lines.append(f"| {r['_workdir']} | {r['_seed']} | {100 * r['linear_probe_accuracy']:.1f} | "
                 f"{100 * r['knn_accuracy']:.1f} | {100 * r['random_init_linear_probe_accuracy']:.1f} | "
                 f"{100 * r['random_init_knn_accuracy']:.1f} |")
  return "\n".join(lines)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--workdirs", nargs="+", required=True)
  parser.add_argument("--out", default="", help="JSON output path (optional)")
  args = parser.parse_args(argv)
  try:
    runs = [load(w) for w in args.workdirs if os.path.isdir(w)]
  except FileNotFoundError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  if not runs:
    print(f"error: --workdirs={args.workdirs!r} contains no run directories", file=sys.stderr)
    return 2
  summary = summarise(runs)
  print(markdown(summary, runs))
  if args.out:
    with open(args.out, "w") as f:
      json.dump({"summary": summary, "runs": [{k: v for k, v in r.items()} for r in runs]}, f, indent=2)
  return 0


if __name__ == "__main__":
  sys.exit(main())
