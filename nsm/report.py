"""python -m nsm.report: tables and figures from nsm.experiment's JSON (mean ± 95% CI over seeds).

  python -m nsm.report --results nsm/figures/experiment.json --out nsm/figures
"""
from __future__ import annotations

import argparse
import json
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from nsm.experiment import ci95  # noqa: E402

MODELS = (("nsm", "NSM (hier, L3 head)"), ("flat_equal_depth", "flat R-GCN, equal depth"),
          ("flat_depth_k", "flat R-GCN, depth = k"))
TRIVIAL = (("majority", "majority"), ("size_only", "size only"), ("edge_types", "edge types"))


def _fmt(values):
  m, h = ci95(values)
  return f"{100 * m:.1f} ± {100 * h:.1f}"


def task_setup(res: dict, task: str) -> dict:
  """The settings a task ran with: its own (session 10 on) or the run-wide setup of sessions 3-5."""
  if "setup" in res[task]:
    return res[task]["setup"]
  g = res["setup"]
  return {"hops": g["default_hops"][task], "steps": g["steps"], "num_graphs": g["num_graphs"],
          "eval_every": g["eval_every"]}


def tables(res: dict) -> str:
  tasks = [t for t in ("causal", "kg", "planning", "chains") if t in res and "models" in res[t]]
  lines = ["| task | " + " | ".join(n for _, n in MODELS) + " | " + " | ".join(n for _, n in TRIVIAL)
           + " |", "|---" * (1 + len(MODELS) + len(TRIVIAL)) + "|"]
  for t in tasks:
    ms = res[t]["models"]
    cells = [_fmt(ms[k]["test_accuracy"]) if k in ms else "-" for k, _ in MODELS]
    cells += [_fmt([s[k] for s in res[t]["trivial"]]) for k, _ in TRIVIAL]
    lines.append(f"| {t} | " + " | ".join(cells) + " |")
  lines += ["", "| task | depth knob (hops) | steps | graphs per seed | eval every | load average (start, end) |",
            "|---|---|---|---|---|---|"]
  for t in tasks:
    st = task_setup(res, t)
    # The main run's own loads: setup["loadavg"] also holds the cycle sweep's (causal's end read
    # 1.66, the sweep's, instead of the main run's 3.64 until session 13).
    load = st.get("loadavg_main")
    load = f"{load[0]}, {load[1]}" if load else "-"
    lines.append(f"| {t} | {st['hops']} | {st['steps']} | {st['num_graphs']} | {st['eval_every']} | {load} |")
  lines += ["", "| task | model | params | depth | width | train s (all seeds) | train CPU-s |",
            "|---|---|---|---|---|---|---|"]
  for t in tasks:
    for k, n in MODELS:
      if k in res[t]["models"]:
        r = res[t]["models"][k]
        cpu = f"{r['train_cpu_seconds']:.0f}" if "train_cpu_seconds" in r else "-"
        lines.append(f"| {t} | {n} | {r['num_params']:,} | {r['depth']} | {r['width']} | "
                     f"{r['train_seconds']:.0f} | {cpu} |")
  if "chains" in tasks and "accuracy_by_hops" in res["chains"]["models"]["nsm"]:
    ks = sorted(res["chains"]["models"]["nsm"]["accuracy_by_hops"], key=int)
    lines += ["", "| chains: accuracy % at k | " + " | ".join(ks) + " |", "|---" * (1 + len(ks)) + "|"]
    for k, n in MODELS:
      r = res["chains"]["models"].get(k)
      if r:
        lines.append(f"| {n} | " + " | ".join(_fmt(r["accuracy_by_hops"][kk]) for kk in ks) + " |")
  sweep = [(t, k) for t in tasks for k in res[t]["models"] if k.startswith("nsm_cw")]
  if sweep:
    lines += ["", "| task | cycle weight | seeds | test accuracy % | test cycle loss |", "|---|---|---|---|---|"]
    for t in tasks:
      rows = [("nsm", res[t]["models"]["nsm"])] + [(k, r) for k, r in res[t]["models"].items()
                                                    if k.startswith("nsm_cw")]
      if len(rows) == 1:
        continue
      for k, r in sorted(rows, key=lambda kr: kr[1]["cycle_weight"]):
        n = len(r["seeds"]) if k != "nsm" else 3
        acc, cyc = r["test_accuracy"][:n], r["test_cycle"][:n]
        lines.append(f"| {t} | {r['cycle_weight']} | {n} | {_fmt(acc)} | {np.mean(cyc):.3f} |")
  return "\n".join(lines) + "\n"


def figures(res: dict, out: str) -> None:
  tasks = [t for t in ("causal", "kg", "planning", "chains") if t in res and "models" in res[t]]
  fig, ax = plt.subplots(figsize=(9, 3.6))
  bars = list(MODELS) + list(TRIVIAL)
  width = 0.8 / len(bars)
  for i, (k, n) in enumerate(bars):
    vals = [(res[t]["models"][k]["test_accuracy"] if k in res[t]["models"] else [np.nan])
            if i < len(MODELS) else [s[k] for s in res[t]["trivial"]] for t in tasks]
    m = [ci95(v)[0] for v in vals]
    h = [ci95(v)[1] for v in vals]
    ax.bar(np.arange(len(tasks)) + (i - (len(bars) - 1) / 2) * width, m, width, yerr=h, label=n,
           capsize=2)
  ax.set_xticks(np.arange(len(tasks)))
  ax.set_xticklabels([t if t != "chains" else "chains (k<=3)" for t in tasks])
  ax.set_ylim(0.3, 1.0)
  ax.axhline(0.5, color="0.5", lw=0.8, ls="--")
  ax.set_ylabel("test accuracy (mean ± 95% CI)")
  ax.legend(fontsize=7, ncol=3, loc="upper left")
  n_seeds = len(res[tasks[0]]["models"]["nsm"]["seeds"])
  ax.set_title(f"NSM vs parameter-matched flat R-GCNs vs trivial baselines ({n_seeds} seeds)")
  fig.tight_layout()
  fig.savefig(os.path.join(out, "experiment_accuracy.png"), dpi=100)
  plt.close(fig)
  if "chains" in tasks:
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    for k, n in MODELS:
      r = res["chains"]["models"].get(k)
      if not r or "accuracy_by_hops" not in r:
        continue
      ks = sorted(r["accuracy_by_hops"], key=int)
      m = np.array([ci95(r["accuracy_by_hops"][kk])[0] for kk in ks])
      h = np.array([ci95(r["accuracy_by_hops"][kk])[1] for kk in ks])
      x = np.array([int(kk) for kk in ks])
      ax.plot(x, m, marker="o", label=n)
      ax.fill_between(x, m - h, m + h, alpha=0.2)
    ax.axvspan(0.5, 3.5, color="0.9", label="training k")
    ax.axhline(0.5, color="0.5", lw=0.8, ls="--")
    ax.set_xlabel("path length k")
    ax.set_ylabel("test accuracy")
    ax.set_title("chains: length generalisation (train k <= 3)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "experiment_chains_by_k.png"), dpi=100)
    plt.close(fig)
  fig, axes = plt.subplots(1, len(tasks), figsize=(3.2 * len(tasks), 3), squeeze=False)
  for ax, t in zip(axes[0], tasks):
    for k, n in MODELS + (("nsm_cw1.0", "NSM cw=1"),):
      r = res[t]["models"].get(k)
      if not r:
        continue
      steps = [c["step"] for c in r["curve"]]
      acc = np.array([c["val_accuracy"] for c in r["curve"]])
      ax.plot(steps, acc.mean(1), label=n)
      ax.fill_between(steps, acc.min(1), acc.max(1), alpha=0.15)
    ax.set_title(t)
    ax.set_xlabel("step")
    ax.set_ylim(0.4, 1.0)
  axes[0][0].set_ylabel("val accuracy (mean, seed range)")
  axes[0][-1].legend(fontsize=6)
  fig.tight_layout()
  fig.savefig(os.path.join(out, "experiment_curves.png"), dpi=100)
  plt.close(fig)


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--results", default="nsm/figures/experiment.json")
  p.add_argument("--out", default="nsm/figures")
  args = p.parse_args(argv)
  with open(args.results) as f:
    res = json.load(f)
  figures(res, args.out)
  md = tables(res)
  with open(os.path.join(args.out, "experiment.md"), "w") as f:
    f.write(md)
  print(md)


if __name__ == "__main__":
  main()
