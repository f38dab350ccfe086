"""python -m nsm.compare --workdirs runs/nsm_causal runs/nsm_planning runs/nsm_kg [--out DIR]

Cross-domain comparison of finished runs: a grouped bar chart (NSM vs the four baselines, test
accuracy) and a markdown table, from each workdir's final_results.json.
"""
from __future__ import annotations

import argparse
import json
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

BARS = (("NSM", None), ("flat R-GCN", "flat_rgcn"), ("edge types", "edge_types"),
        ("size only", "size_only"), ("majority", "majority"))


def load(workdir: str) -> dict:
  path = os.path.join(workdir, "final_results.json")
  if not os.path.exists(path):
    raise FileNotFoundError(f"--workdirs {workdir!r} is invalid: {path} does not exist "
                            "(allowed: workdirs of finished nsm runs)")
  with open(path) as f:
    return json.load(f)


def table(results: dict) -> str:
  lines = ["| run | domain | mode | NSM | balanced | " + " | ".join(n for n, k in BARS[1:]) + " |",
           "|---" * (4 + len(BARS)) + "|"]
  for name, r in results.items():
    b = r.get("baselines", {})
    cells = [f"{100 * b[k]:.1f}" if k in b else "-" for _, k in BARS[1:]]
    lines.append(f"| {name} | {r['domain']} | {r['mode']} | {100 * r['test_accuracy']:.1f} | "
                 f"{100 * r['balanced_accuracy']:.1f} | " + " | ".join(cells) + " |")
  return "\n".join(lines) + "\n"


def bar_chart(results: dict, path: str) -> None:
  names = list(results)
  x = np.arange(len(names))
  width = 0.8 / len(BARS)
  fig, ax = plt.subplots(figsize=(max(5, 1.8 * len(names)), 3.6))
  for i, (label, key) in enumerate(BARS):
    vals = [r["test_accuracy"] if key is None else r.get("baselines", {}).get(key, np.nan)
            for r in results.values()]
    ax.bar(x + (i - (len(BARS) - 1) / 2) * width, vals, width, label=label)
  ax.set_xticks(x)
  ax.set_xticklabels([f"{r['domain']}\n({r['mode']})" for r in results.values()])
  ax.set_ylabel("test accuracy")
  ax.set_ylim(0, 1)
  ax.axhline(0.5, color="0.5", lw=0.8, ls="--")
  ax.legend(fontsize=7, ncol=3)
  ax.set_title("NSM: cross-domain comparison")
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--workdirs", nargs="+", required=True)
  p.add_argument("--out", default=".", help="directory for comparison.png / comparison.md")
  args = p.parse_args(argv)
  results = {os.path.basename(os.path.normpath(w)): load(w) for w in args.workdirs}
  os.makedirs(args.out, exist_ok=True)
  bar_chart(results, os.path.join(args.out, "comparison.png"))
  md = table(results)
  with open(os.path.join(args.out, "comparison.md"), "w") as f:
    f.write(md)
  print(md)
  return results


if __name__ == "__main__":
  main()
