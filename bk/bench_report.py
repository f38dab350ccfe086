"""python -m bk.bench_report [JSON]: the README tables of a `python -m bk.bench` result (markdown)."""
from __future__ import annotations

import json
import sys

SHORT = {"original (torch c128)": "original (torch c128)",
         "theta/phi lax.scan c64": "θ/φ lax.scan c64",
         "theta/phi lax.scan c128": "θ/φ lax.scan c128",
         "sequential": "`sequential`", "scan": "`scan` (Möbius)",
         "lru (assoc. scan c64)": "LRU assoc. scan c64",
         "attention (causal, d=16)": "attention (causal, d=16)"}


def _methods(rows):
  seen = []
  for r in rows:
    if r["method"] not in seen:
      seen.append(r["method"])
  return seen


def _reason(r) -> str:
  reason = r.get("reason", "")
  if "non-finite" in reason:
    return "INVALID: Inf/NaN"
  if "exactly 0" in reason:
    return "INVALID: zeros"
  if "forward output invalid" in reason:
    return "INVALID: fwd"
  if "relative error" in reason:
    return f"INVALID: err {r['rel_err']:.0e}"
  if "GiB" in reason:
    return "skip: > 4 GiB"
  if "single call" in reason:
    return "skip: > 3 s/call"
  return r["status"]


def _grid_table(part: dict, mode: str, cell) -> str:
  """Markdown table: one row per (B·H, N), one column per method, cell(r, bh, n) per entry."""
  rows = [r for r in part["rows"] if r["mode"] == mode]
  methods = _methods(rows)
  out = ["| B·H | N | " + " | ".join(SHORT.get(m, m) for m in methods) + " |",
         "|---|---|" + "---|" * len(methods)]
  cells = {}
  for r in rows:
    cells.setdefault((r["batch_heads"], r["n"]), {})[r["method"]] = r
  for (bh, n), by in cells.items():
    out.append(f"| {bh} | {n} | " + " | ".join(cell(by.get(m), bh, n) for m in methods) + " |")
  return "\n".join(out)


def _speed_cell(r, bh, n) -> str:
  if r is None:
    return "–"
  if r["status"] != "timed":
    return _reason(r)
  scale = lambda t: bh * n / t / 1e6  # noqa: E731
  return (f"{scale(r['seconds']):.3g} [{scale(r['max_s']):.3g}–{scale(r['min_s']):.3g}]"
          f" · {r['rel_err']:.0e}")


def _memory_cell(r, bh, n) -> str:
  del bh, n
  return (f"{r['peak_bytes'] / 2 ** 20:.3g}" if r and r.get("peak_bytes") and r["status"] == "timed"
          else "–")


def table_a(part: dict, mode: str) -> str:
  return _grid_table(part, mode, _speed_cell)


def table_memory(part: dict, mode: str) -> str:
  return _grid_table(part, mode, _memory_cell)


def table_p(part: dict) -> str:
  rows = part["rows"]
  methods = _methods(rows)
  out = ["| B·H | N | " + " | ".join(methods) + " | working set of `scan` / `sequential` (MiB) |",
         "|---|---|" + "---|" * (len(methods) + 1)]
  cells = {}
  for r in rows:
    cells.setdefault((r["batch_heads"], r["n"]), {})[r["method"]] = r
  for (bh, n), by in cells.items():
    line = []
    for m in methods:
      r = by[m]
      line.append(f"{r['ns_per_token']:.1f} [{r['ns_min']:.1f}–{r['ns_max']:.1f}]"
                  if r["status"] == "timed" else _reason(r))
    ws = " / ".join(f"{by[m]['working_set_bytes'] / 2 ** 20:.2f}" for m in ("scan", "sequential"))
    out.append(f"| {bh} | {n} | " + " | ".join(line) + f" | {ws} |")
  return "\n".join(out)


def table_b(part: dict) -> str:
  keys = [k for k in part["rows"][0] if k not in ("z", "n") and not k.endswith("nonfinite")]
  out = ["| z | N | " + " | ".join(keys) + " |", "|---|---|" + "---|" * len(keys)]
  for r in part["rows"]:
    vals = []
    for k in keys:
      v = r[k]
      vals.append(f"inf ({r[k + '_nonfinite']} non-finite)" if v == float("inf") else f"{v:.2g}")
    out.append(f"| {r['z']} | {r['n']} | " + " | ".join(vals) + " |")
  return "\n".join(out)


def table_c(part: dict) -> str:
  out = ["| gradient | α | cosine vs exact | max abs err / max |exact| |", "|---|---|---|---|"]
  for r in part["rows"]:
    out.append(f"| {r['gradient']} | {r['grad_blend']} | {r['cosine_vs_exact']:.4f} | "
               f"{r['max_rel_err_vs_exact']:.2g} |")
  return "\n".join(out)


def markdown(result: dict) -> str:
  parts = []
  for key, part in result.items():
    if key.startswith("A_"):
      for mode in ("fwd", "fwd+bwd"):
        parts.append(f"**{key}: {mode}, million tokens/s, median [min–max] · max relative error "
                     f"vs float64**\n\n" + table_a(part, mode))
      parts.append(f"**{key}: fwd+bwd peak memory (MiB)**\n\n" + table_memory(part, "fwd+bwd"))
    elif key.startswith("P_"):
      parts.append(f"**{key}: forward ns per token, median [min–max]**\n\n" + table_p(part)
                   + "\n\nratios (N = 16384 vs 1024): " + json.dumps(
                       {k: round(v, 2) for k, v in part["ratios"].items()}))
    elif key == "B":
      parts.append("**B: max relative error vs float64**\n\n" + table_b(part))
    elif key == "C":
      parts.append(f"**C: gradient fidelity ({part['setup']})**\n\n" + table_c(part))
  runs = result.get("runs", [])
  meta = "\n".join(f"- run {i}: parts {r['parts']}, threads {r['threads']} (torch "
                   f"{r['torch_threads']}), {r['wall_s']:.0f} s wall, 1-min load average samples "
                   f"max {r['load_avg_max']}" for i, r in enumerate(runs))
  return "\n\n".join(parts) + "\n\n" + meta + "\n"


def main(argv=None):
  argv = sys.argv[1:] if argv is None else argv
  path = argv[0] if argv else "bench_results/bk_core_bench.json"
  with open(path) as f:
    print(markdown(json.load(f)))


if __name__ == "__main__":
  main()
