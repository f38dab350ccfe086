"""Summaries, tables and figures of `growth.experiment` results (mean ± std, 95% t-intervals).

Every loss here is the held-out *test* loss (`final_test_loss`, `curve["test_loss"]`); the
validation loss is what the stagnation trigger read and is never reported.
"""
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


def mean_curve(runs: list[dict], grid: np.ndarray) -> np.ndarray:
  """Mean over runs of the test-loss curves, interpolated on a FLOPs grid."""
  return np.mean([np.interp(grid, r["curve"]["flops"], r["curve"]["test_loss"]) for r in runs],
                 axis=0)


def flops_ratio(fixed: list[dict], runs: list[dict]) -> float:
  """FLOPs the fixed model needs to reach its own mean final test loss L* / FLOPs `runs` need
  to reach L* (seed-mean curves, interpolated); 0 if `runs` never reach L* (> 1: fewer FLOPs)."""
  budget = fixed[0]["budget"]
  grid = np.linspace(0.0, budget, 2001)
  target = float(np.mean([r["final_test_loss"] for r in fixed]))
  f_fixed = first_crossing(grid, mean_curve(fixed, grid), target + 1e-12)
  f_run = first_crossing(grid, mean_curve(runs, grid), target + 1e-12)
  return 0.0 if f_run is None or f_fixed is None else f_fixed / max(f_run, 1e-30)


def flops_ratio_bootstrap(fixed: list[dict], runs: list[dict], n_boot: int = 2000,
                          seed: int = 0) -> dict:
  """flops_ratio with a paired bootstrap over seeds (runs[i] and fixed[i] share seed i).

  Returns the point estimate, the 2.5/97.5 % percentiles and the fraction of resamples in which
  the run reached L* (unreached resamples count as ratio 0, so the interval is conservative).
  """
  n = min(len(fixed), len(runs))
  rng = np.random.default_rng(seed)
  boots = []
  for _ in range(n_boot):
    idx = rng.integers(0, n, n)
    boots.append(flops_ratio([fixed[i] for i in idx], [runs[i] for i in idx]))
  boots = np.asarray(boots)
  return {"ratio": flops_ratio(fixed[:n], runs[:n]), "lo": float(np.percentile(boots, 2.5)),
          "hi": float(np.percentile(boots, 97.5)), "reached": float((boots > 0).mean())}


def _recovery(run: dict) -> list[dict]:
  out = []
  c = run["curve"]
  for sp in run["spikes"]:
    rec = None
    for s, v in zip(c["step"], c["test_loss"]):
      if s > sp["step"] and v <= sp["before"]:
        rec = s - sp["step"]
        break
    out.append({"spike": sp["after"] - sp["before"], "recover_steps": rec})
  return out


def summarize(results: dict) -> dict:
  runs = results["runs"]
  target = None
  if "fixed_target" in runs:
    target = float(np.mean([r["final_test_loss"] for r in runs["fixed_target"]]))
  out = {"target_loss": target, "runs": {}, "paired": {}}
  for name, rs in runs.items():
    m, sd, hw = ci95([r["final_test_loss"] for r in rs])
    entry = {"final_mean": m, "final_std": sd, "final_ci95": hw, "n": len(rs),
             "steps": float(np.mean([r["steps"] for r in rs])),
             "final_depth": float(np.mean([r["final_depth"] for r in rs])),
             "train_wall_s": float(np.mean([r["train_wall_s"] for r in rs])),
             # seed 0 pays the jit compiles of the geometry functions: average the later seeds
             "overhead_s": float(np.mean([r["overhead_s"] for r in (rs[1:] or rs)])),
             "growth_steps": [[e["step"] for e in r["events"]] for r in rs]}
    if target is not None:
      ratios = [first_crossing(r["curve"]["flops"], r["curve"]["test_loss"], target)
                for r in rs]
      hit = [x / r["budget"] for x, r in zip(ratios, rs) if x is not None]
      entry["flops_to_target"] = float(np.mean(hit)) if hit else None
      entry["reached_target"] = f"{len(hit)}/{len(rs)}"
      if name != "fixed_target" and len(rs) >= 2:
        entry["flops_ratio"] = flops_ratio_bootstrap(runs["fixed_target"], rs)
    recs = [x for r in rs for x in _recovery(r)]
    if recs:
      entry["spike_mean"] = float(np.mean([x["spike"] for x in recs]))
      got = [x["recover_steps"] for x in recs if x["recover_steps"] is not None]
      entry["recover_steps_mean"] = float(np.mean(got)) if got else None
      entry["recovered"] = f"{len(got)}/{len(recs)}"
    out["runs"][name] = entry
  pairs = [(a, "fixed_target") for a in runs if a != "fixed_target"]
  pairs += [(a, "copy") for a in runs if a not in ("copy", "fixed_target")]
  pairs += [(a, "fixed_initial") for a in runs if a not in ("fixed_initial", "fixed_target")]
  pairs += [("geometric_trigger", "copy_trigger"), ("aiether", "geometric_trigger"),
            ("geometric_trigger", "geometric_schedule"), ("copy_trigger", "copy"),
            ("geometric_trigger", "fixed_small"), ("geometric_trigger", "fixed_initial")]
  for a, b in dict.fromkeys(pairs):
    if a in runs and b in runs and min(len(runs[a]), len(runs[b])) >= 2:
      n = min(len(runs[a]), len(runs[b]))
      d = [x["final_test_loss"] - y["final_test_loss"] for x, y in zip(runs[a][:n], runs[b][:n])]
      m, sd, hw = ci95(d)
      out["paired"][f"{a} - {b}"] = {"mean": m, "std": sd, "ci95": hw,
                                     "significant": bool(abs(m) > hw)}
  return out


def _fmt(x, nd=4):
  return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{nd}f}"


def markdown(results: dict) -> str:
  s = results.get("summary") or summarize(results)
  lines = [f"Variant `{results['variant']}`, {results['seeds']} seeds, equal training FLOPs "
           f"(target loss L* = fixed_target's mean final test loss {_fmt(s['target_loss'])}; "
           f"unigram valid ppl {results['unigram_valid_ppl']:.2f}).", "",
           "| run | final test loss (mean ± std) | 95% CI ± | FLOPs-to-L* ratio vs fixed [95% "
           "bootstrap CI] | FLOPs to L* / budget | reached "
           "| steps | final depth | growth steps (seed 0) | spike at growth | steps to recover "
           "| train wall s | growth overhead s |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
  for name, e in s["runs"].items():
    fr = e.get("flops_ratio")
    frs = "–" if fr is None else (f"{fr['ratio']:.3f} [{fr['lo']:.3f}, {fr['hi']:.3f}]"
                                  + ("" if fr["reached"] == 1.0 else
                                     f" (reached in {100 * fr['reached']:.0f} %)"))
    lines.append(
        f"| {name} | {_fmt(e['final_mean'])} ± {_fmt(e['final_std'])} | {_fmt(e['final_ci95'])} "
        f"| {frs} | {_fmt(e.get('flops_to_target'), 3)} | {e.get('reached_target', '–')} "
        f"| {e['steps']:.0f} | {e['final_depth']:.1f} | {e['growth_steps'][0]} "
        f"| {_fmt(e.get('spike_mean'))} | {_fmt(e.get('recover_steps_mean'), 1)} "
        f"({e.get('recovered', '–')}) | {e['train_wall_s']:.1f} | {e['overhead_s']:.2f} |")
  if s["paired"]:
    lines += ["", "Paired differences of final test loss (same seed = same data and init key):", "",
              "| comparison | mean diff | std | 95% CI ± | CI excludes 0 |", "|---|---|---|---|---|"]
    for k, d in s["paired"].items():
      lines.append(f"| {k} | {_fmt(d['mean'])} | {_fmt(d['std'])} | {_fmt(d['ci95'])} "
                   f"| {'yes' if d['significant'] else 'no'} |")
  lines.append(f"\nTotal experiment wall-clock: {results.get('total_wall_s', float('nan')):.0f} s; "
               f"process CPU time {results.get('cpu_s', float('nan')):.0f} s.")
  return "\n".join(lines) + "\n"


def _band(ax, rs, key, label):
  xs = [np.asarray(r["curve"][key], np.float64) for r in rs]
  ys = [np.asarray(r["curve"]["test_loss"], np.float64) for r in rs]
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
      ax.set_prop_cycle(color=plt.cm.tab20.colors[::2] + plt.cm.tab20.colors[1::2])
      ends = [_band(ax, rs, key, name) for name, rs in results["runs"].items()]
      ends = [e for e in ends if e is not None]
      ax.set_xlabel(xlabel)
      ax.set_ylabel("test loss (nats/token)")
      ax.grid(alpha=0.3)
      if zoom:
        finals = [r["final_test_loss"] for rs in results["runs"].values() for r in rs]
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


def main(argv=None) -> None:
  """python -m growth.report OUT: rewrite OUT/table.md and the figures from OUT/results.json."""
  import argparse  # pylint: disable=g-import-not-at-top
  import json  # pylint: disable=g-import-not-at-top
  parser = argparse.ArgumentParser(description=main.__doc__)
  parser.add_argument("out")
  args = parser.parse_args(argv)
  path = os.path.join(args.out, "results.json")
  with open(path) as f:
    results = json.load(f)
  results["summary"] = summarize(results)
  with open(path, "w") as f:
    json.dump(results, f)
  with open(os.path.join(args.out, "table.md"), "w") as f:
    f.write(markdown(results))
  plot(results, args.out)
  print(markdown(results))


if __name__ == "__main__":
  main()
