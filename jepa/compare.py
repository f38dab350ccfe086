"""python -m jepa.compare: hierarchical vs flat (or any set of runs), mean ± std over seeds.

Groups `<workdir>/results/final_results.json` by the hierarchy (kind + level weights) and prints a
markdown table of the probe accuracies and effective ranks, mean ± sample std over the runs of
each group, plus the per-seed rows; writes the same as JSON.

  for s in 0 1 2; do for w in "(1.0,0.5,0.25)" "(1.0,)"; do
    python -m jepa.main --config configs/jepa.py:quick --config.seed=$s \
      --config.hierarchy.weights="$w" --workdir runs/jepa_seeds/w${#w}_s$s; done; done
  python -m jepa.compare --workdirs runs/jepa_seeds/* --out runs/jepa_seeds/compare.json

`--history METRIC` compares a periodic metric instead (e.g. eval/knn_accuracy, the 2k/2k k-NN
monitor), read from each run's metrics.jsonl at every evaluation step, so unfinished runs count
up to their last evaluation: mean ± sample std and the 95 % t interval per group and step, the
per-seed values, and the paired difference of each group to the flat one (same seeds); `--plot`
draws the curves.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}
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
  if len(weights) == 1:
    return label
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


def load_history(workdir: str, metric: str) -> dict:
  """{group, seed, workdir, curve: {step: value}} of `metric` from a run's metrics.jsonl."""
  path = os.path.join(workdir, "metrics.jsonl")
  cfg_path = os.path.join(workdir, "config.json")
  if not (os.path.exists(path) and os.path.exists(cfg_path)):
    raise FileNotFoundError(f"--workdirs: {workdir!r} has no metrics.jsonl / config.json (not a run)")
  with open(cfg_path) as f:
    cfg = json.load(f)
  curve = {}
  with open(path) as f:
    for line in f:
      rec = json.loads(line)
      if metric in rec:
        curve[int(rec["step"])] = float(rec[metric])  # a resumed run's repeated step: the latest
  if not curve:
    raise ValueError(f"--history={metric!r} is invalid for {workdir!r}: no record of it in metrics.jsonl")
  h = cfg.get("hierarchy", {})
  return {"group": group_name({"hierarchy": h.get("kind", "?"), "hierarchy_weights": h.get("weights", [])}),
          "seed": cfg.get("seed"), "workdir": workdir, "curve": curve}


def ci95(vals) -> tuple[float, float, float]:
  """(mean, sample std, half-width of the 95 % t interval; nan for one value)."""
  v = np.asarray(vals, np.float64)
  if len(v) < 2:
    return float(v.mean()), float("nan"), float("nan")
  sd = float(v.std(ddof=1))
  return float(v.mean()), sd, T95.get(len(v) - 1, 1.96) * sd / np.sqrt(len(v))


def summarise_history(runs: list[dict]) -> dict:
  """{group: {step: {mean, sd, ci95, n, seeds, values, paired_vs_flat}}} at the steps all its runs reached."""
  groups: dict[str, list[dict]] = {}
  for r in runs:
    groups.setdefault(r["group"], []).append(r)
  flat = next((rs for g, rs in groups.items() if g.startswith("flat")), None)
  out = {}
  for name, rs in groups.items():
    steps = sorted(set.intersection(*(set(r["curve"]) for r in rs)))
    out[name] = {}
    for st in steps:
      vals = [r["curve"][st] for r in rs]
      mean, sd, half = ci95(vals)
      row = {"mean": mean, "sd": sd, "ci95": half, "n": len(vals), "seeds": [r["seed"] for r in rs],
             "values": vals}
      if flat is not None and not name.startswith("flat"):
        by_seed = {r["seed"]: r["curve"].get(st) for r in flat}
        diffs = [r["curve"][st] - by_seed[r["seed"]] for r in rs if by_seed.get(r["seed"]) is not None]
        if diffs:
          dm, dsd, dh = ci95(diffs)
          row["paired_vs_flat"] = {"mean": dm, "sd": dsd, "ci95": dh, "n": len(diffs)}
      out[name][st] = row
  return out


def markdown_history(summary: dict, metric: str) -> str:
  pct = lambda x: f"{100 * x:.2f}"  # noqa: E731
  lines = [f"| variant | step | n | {metric} % (mean ± sd [95 % CI]) | per seed | paired − flat (mean [95 % CI]) |",
           "|---|---|---|---|---|---|"]
  for name, rows in summary.items():
    for st, r in rows.items():
      pv = r.get("paired_vs_flat")
      paired = f"{100 * pv['mean']:+.2f} [±{100 * pv['ci95']:.2f}]" if pv else "–"
      lines.append(f"| {name} | {st} | {r['n']} | {pct(r['mean'])} ± {pct(r['sd'])} [±{pct(r['ci95'])}] | "
                   + ", ".join(pct(v) for v in r["values"]) + f" | {paired} |")
  return "\n".join(lines)


def parse_hlines(specs: list[str]) -> list[tuple[str, float]]:
  """`--hline LABEL=PERCENT` values -> [(label, percent)]; a malformed one is a ValueError naming it."""
  out = []
  for spec in specs:
    label, _, value = spec.rpartition("=")
    try:
      out.append((label, float(value)))
    except ValueError:
      raise ValueError(f"--hline={spec!r} is invalid: allowed LABEL=PERCENT, e.g. 'raw pixels=82.4'") from None
    if not label:
      raise ValueError(f"--hline={spec!r} is invalid: allowed LABEL=PERCENT, e.g. 'raw pixels=82.4'")
  return out


def plot_history(summary: dict, runs: list[dict], metric: str, path: str,
                 hlines: list[tuple[str, float]] = ()) -> None:
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, ax = plt.subplots(figsize=(6.4, 4.2))
  for i, (name, rows) in enumerate(summary.items()):
    color = f"C{i}"
    for r in runs:
      if r["group"] == name:
        st = sorted(r["curve"])
        ax.plot(st, [100 * r["curve"][s] for s in st], color=color, alpha=0.3, lw=0.8)
    st = list(rows)
    m = np.array([rows[s]["mean"] for s in st]) * 100
    h = np.array([rows[s]["ci95"] for s in st]) * 100
    ax.plot(st, m, color=color, lw=2, marker="o", label=f"{name} (n={rows[st[-1]]['n']})")
    ax.fill_between(st, m - h, m + h, color=color, alpha=0.12)
  for j, (label, value) in enumerate(hlines):
    ax.axhline(value, color=f"C{len(summary) + j}", ls="--", lw=1, label=label)
  ax.set_xlabel("step")
  ax.set_ylabel(f"{metric} (%)")
  ax.set_title("mean (thick), 95 % CI (band), seeds (thin)")
  ax.legend(fontsize=7)
  ax.grid(alpha=0.3)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--workdirs", nargs="+", required=True)
  parser.add_argument("--out", default="", help="JSON output path (optional)")
  parser.add_argument("--history", default="", help="compare this periodic metric from metrics.jsonl instead")
  parser.add_argument("--plot", default="", help="--history only: PNG of the curves (optional)")
  parser.add_argument("--hline", action="append", default=[],
                      help="--plot only: a dashed reference line LABEL=PERCENT (repeatable), e.g. 'raw pixels=82.4'")
  args = parser.parse_args(argv)
  loader = (lambda w: load_history(w, args.history)) if args.history else load
  try:
    hlines = parse_hlines(args.hline)
    runs = [loader(w) for w in args.workdirs if os.path.isdir(w)]
  except (FileNotFoundError, ValueError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  if not runs:
    print(f"error: --workdirs={args.workdirs!r} contains no run directories", file=sys.stderr)
    return 2
  if args.history:
    summary = summarise_history(runs)
    print(markdown_history(summary, args.history))
    if args.plot:
      plot_history(summary, runs, args.history, args.plot, hlines)
    record = {"metric": args.history, "summary": summary,
              "runs": [{**r, "curve": {str(k): v for k, v in r["curve"].items()}} for r in runs]}
  else:
    summary = summarise(runs)
    print(markdown(summary, runs))
    record = {"summary": summary, "runs": runs}
  if args.out:
    with open(args.out, "w") as f:
      json.dump(record, f, indent=2)
  return 0

if __name__ == "__main__":
  sys.exit(main())
