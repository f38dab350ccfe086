"""Summaries, tables and figures of `growth.experiment` results (mean ± std, 95% t-intervals)."""
from __future__ import annotations

import math
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from scipy import stats  # noqa: E402


def ci95(values) -> tuple[float, float, float]:
  """(mean, std, half-width of the 95% t-interval of the mean); std/hw are nan for n < 2."""
  v = np.asarray(values, np.float64)
  if len(v) < 2:
    return float(v.mean()), math.nan, math.nan
  sd = float(v.std(ddof=1))
  return float(v.mean()), sd, float(stats.t.ppf(0.975, len(v) - 1) * sd / math.sqrt(len(v)))


def first_crossing(x, y, target: float) -> float | None:
  """Smallest x where the piecewise-linear curve y(x) reaches <= target (None if never)."""
  x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
  for i in range(len(y)):
    if y[i] <= target:
      if i == 0:
        return float(x[0])
      f = (y[i - 1] - target) / (y[i - 1] - y[i])
      return float(x[i - 1] + f * (x[i] - x[i - 1]))
  return None


def _recovery(run: dict) -> list[dict]:
  out = []
  c = run["curve"]
  for sp in run["spikes"]:
    rec = None
    for s, v in zip(c["step"], c["val_loss"]):
      if s > sp["step"] and v <= sp["before"]:
        rec = s - sp["step"]
        break
    out.append({"spike": sp["after"] - sp["before"], "recover_steps": rec})
  return out


def summarize(results: dict) -> dict:
  runs = results["runs"]
  target = None
  if "fixed_target" in runs:
    target = float(np.mean([r["final_val_loss"] for r in runs["fixed_target"]]))
  out = {"target_loss": target, "runs": {}, "paired": {}}
  for name, rs in runs.items():
    m, sd, hw = ci95([r["final_val_loss"] for r in rs])
    entry = {"final_mean": m, "final_std": sd, "final_ci95": hw, "n": len(rs),
             "steps": float(np.mean([r["steps"] for r in rs])),
             "final_depth": float(np.mean([r["final_depth"] for r in rs])),
             "train_wall_s": float(np.mean([r["train_wall_s"] for r in rs])),
             # seed 0 pays the jit compiles of the geometry functions: average the later seeds
             "overhead_s": float(np.mean([r["overhead_s"] for r in (rs[1:] or rs)])),
             "growth_steps": [[e["step"] for e in r["events"]] for r in rs]}
    if target is not None:
      ratios = [first_crossing(r["curve"]["flops"], r["curve"]["val_loss"], target)
                for r in rs]
      hit = [x / r["budget"] for x, r in zip(ratios, rs) if x is not None]
      entry["flops_to_target"] = float(np.mean(hit)) if hit else None
      entry["reached_target"] = f"{len(hit)}/{len(rs)}"
    recs = [x for r in rs for x in _recovery(r)]
    if recs:
      entry["spike_mean"] = float(np.mean([x["spike"] for x in recs]))
      got = [x["recover_steps"] for x in recs if x["recover_steps"] is not None]
      entry["recover_steps_mean"] = float(np.mean(got)) if got else None
      entry["recovered"] = f"{len(got)}/{len(recs)}"
    out["runs"][name] = entry
  for a, b in (("geometric_schedule", "copy"), ("geometric_trigger", "copy"),
               ("geometric_schedule", "fixed_target"), ("copy", "fixed_target"),
               ("stack", "fixed_target"), ("zero", "copy"),
               ("geometric_trigger", "fixed_small"), ("geometric_trigger", "fixed_initial"),
               ("fixed_small", "fixed_target")):
    if a in runs and b in runs and len(runs[a]) == len(runs[b]) >= 2:
      d = [x["final_val_loss"] - y["final_val_loss"] for x, y in zip(runs[a], runs[b])]
      m, sd, hw = ci95(d)
      out["paired"][f"{a} - {b}"] = {"mean": m, "std": sd, "ci95": hw,
                                     "significant": bool(abs(m) > hw)}
  return out


def _fmt(x, nd=4):
  return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{nd}f}"


def markdown(results: dict) -> str:
  s = results.get("summary") or summarize(results)
  lines = [f"Variant `{results['variant']}`, {results['seeds']} seeds, equal training FLOPs "
           f"(target loss = fixed_target's mean final val loss {_fmt(s['target_loss'])}; "
           f"unigram valid ppl {results['unigram_valid_ppl']:.2f}).", "",
           "| run | final val loss (mean ± std) | 95% CI ± | FLOPs to target / budget | reached "
           "| steps | final depth | growth steps (seed 0) | spike at growth | steps to recover "
           "| train wall s | growth overhead s |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|"]
  for name, e in s["runs"].items():
    lines.append(
        f"| {name} | {_fmt(e['final_mean'])} ± {_fmt(e['final_std'])} | {_fmt(e['final_ci95'])} "
        f"| {_fmt(e.get('flops_to_target'), 3)} | {e.get('reached_target', '–')} "
        f"| {e['steps']:.0f} | {e['final_depth']:.1f} | {e['growth_steps'][0]} "
        f"| {_fmt(e.get('spike_mean'))} | {_fmt(e.get('recover_steps_mean'), 1)} "
        f"({e.get('recovered', '–')}) | {e['train_wall_s']:.1f} | {e['overhead_s']:.2f} |")
  if s["paired"]:
    lines += ["", "Paired differences of final val loss (same seed = same data and init key):", "",
              "| comparison | mean diff | std | 95% CI ± | CI excludes 0 |", "|---|---|---|---|---|"]
    for k, d in s["paired"].items():
      lines.append(f"| {k} | {_fmt(d['mean'])} | {_fmt(d['std'])} | {_fmt(d['ci95'])} "
                   f"| {'yes' if d['significant'] else 'no'} |")
  lines.append(f"\nTotal experiment wall-clock: {results.get('total_wall_s', float('nan')):.0f} s; "
               f"process CPU time {results.get('cpu_s', float('nan')):.0f} s.")
  return "\n".join(lines) + "\n"


def _band(ax, rs, key, label):
  xs = [np.asarray(r["curve"][key], np.float64) for r in rs]
  ys = [np.asarray(r["curve"]["val_loss"], np.float64) for r in rs]
  lo = max(x[0] for x in xs)
  hi = min(x[-1] for x in xs)
  if hi <= lo:
    return None
  grid = np.linspace(lo, hi, 100)
  grid_y = np.stack([np.interp(grid, x, y) for x, y in zip(xs, ys)])
  m, sd = grid_y.mean(0), grid_y.std(0)
  (line,) = ax.plot(grid, m, label=label, lw=1.3)
  ax.fill_between(grid, m - sd, m + sd, color=line.get_color(), alpha=0.15)
  return hi


def plot(results: dict, out_dir: str) -> list[str]:
  paths = []
  for key, xlabel, fname in (("flops", "cumulative training FLOPs", "loss_vs_flops.png"),
                             ("wall", "training wall-clock (s, compile excluded)",
                              "loss_vs_wallclock.png")):
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    for ax, zoom in zip(axes, (False, True)):
      ends = [_band(ax, rs, key, name) for name, rs in results["runs"].items()]
      ends = [e for e in ends if e is not None]
      ax.set_xlabel(xlabel)
      ax.set_ylabel("validation loss (nats/token)")
      ax.grid(alpha=0.3)
      if zoom:
        finals = [r["final_val_loss"] for rs in results["runs"].values() for r in rs]
        ax.set_ylim(min(finals) - 0.05, max(finals) + 0.25)
        if ends:
          ax.set_xlim(0.5 * max(ends), 1.02 * max(ends))
        ax.set_title("zoom on the end (mean ± std over seeds)")
      else:
        ax.set_title(f"growth experiment ({results['variant']}, {results['seeds']} seeds)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    path = os.path.join(out_dir, fname)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    paths.append(path)
  return paths
