"""python -m bk.bench: BK-Core benchmark (one timing protocol for every row), tables + JSON.

  heavy -x python -m bk.bench --parts A --threads 1          # the kernel table (~8 min)
  heavy -x python -m bk.bench --parts P,B,C --merge          # per-token vs N, accuracy, gradients
  python -m bk.bench --parts A,P --quick                     # small grid (smoke run)

A: forward and forward+backward of the BK-Core (diag((H - zI)^-1), B*H sequences of N positions)
   and its peers, all in one harness (bk/bench_rows.py): the original (PyTorch, complex128, a
   Python loop over positions; bk/torch_reference.py), the original's theta/phi recursion as a
   compiled `lax.scan` (complex64 and complex128), the package's `sequential` continued fraction
   and `scan` (blocked Moebius associative scan), a diagonal linear recurrence by
   `associative_scan` (LRU/S5 style) and causal softmax attention. Protocol (common/benchmarking.py
   for threads and load): per (B*H, N, mode) cell every row is compiled, run once and checked
   against a float64 reference at that size (INVALID rows, with the reason, are not timed), then the
   valid rows are timed interleaved with the same repetitions: median, min, max, tokens/s, peak
   memory. torch.set_num_threads == the CPUs XLA may use (--threads). Nothing is written (exit 2)
   when the 1-minute load average exceeds --max-load at the start or other processes use more
   than 0.25 CPU cores on average (checked after every cell).
P: per-token forward time vs N (1024 ... 16384) of the package methods, interleaved, with the
   working set (XLA memory analysis) beside the CPU's cache sizes.
B: complex64 accuracy vs N (raw theta/phi vs Moebius scan). C: gradient fidelity (cosine with the
exact float64 gradient) of each GRAD_BLEND setting. D: language model (bk/bench_lm.py), lazily.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np

from bk import bench_rows
from bk import core
from common import benchmarking


A_SEQ_LENS = (128, 512, 2048, 8192, 32768, 65536)
A_BATCH_HEADS = (1, 8, 64)
A_ROWS = ("original (torch c128)", "theta/phi lax.scan c64", "theta/phi lax.scan c128",
          "sequential", "scan", "lru (assoc. scan c64)", "attention (causal, d=16)")
P_SEQ_LENS = (1024, 2048, 4096, 8192, 16384)
P_METHODS = ("scan", "sequential", "sequential: loop only", "sequential, 8-lane groups")
MAX_CALL_S = 3.0          # a row whose single call takes longer is not timed (and larger N skipped)
CELL_BUDGET_S = 1.5       # timed seconds per cell: repetitions = budget / one round, clamped
MIN_REPS, MAX_REPS = 5, 15
ATTN_MAX_BYTES = 4 * 2 ** 30
B_SEQ_LENS = (16, 64, 128, 256, 1024, 4096, 16384)
B_SHIFTS = (1j, 0.1j, 0.01j)
C_BLENDS = (0.0, 0.3, 0.5, 0.7, 1.0)
reference_float64 = bench_rows.reference_float64


def _inputs(bh: int, n: int, seed: int = 0):
  return bench_rows.bk_inputs(bh, n, seed)


def analytic_flops(method: str, bh: int, n: int, causal: bool = False, block=None) -> float:
  """Real floating-point operations of one forward pass (our count of the algorithm's arithmetic).

  Per position and scan: block-matrix step 44 (two complex products + max-|entry| rescale),
  continued-fraction step 11; per associative combine 80; final 1/G combination 13 (causal: 7);
  dense inverse 8 N^3 per matrix; original: 2 x 14 (theta, phi) + 20 per position, complex128.
  XLA's cost analysis counts a while-loop body once, so it is not used here.
  """
  width = bh if causal else 2 * bh
  final = (7 if causal else 13) * bh * n
  if method == "sequential":
    return 11.0 * width * n + final
  if method == "dense":
    return 8.0 * bh * n ** 3
  if method == "original":
    return 48.0 * bh * n
  block = block or core.auto_block_size(n, width)
  nblocks = -(-n // block)
  step1 = 44.0 * width * n if block > 1 else 0.0
  return step1 + 11.0 * width * n + 80.0 * width * 2 * nblocks + final


# ----------------------------------------------------------------------------- part A: protocol
class _Refs:
  """float64 references of one (B*H, N) size, computed on first use."""

  def __init__(self, bh: int, n: int):
    self.bh, self.n, self._cache = bh, n, {}

  def get(self, key):
    if key not in self._cache:
      self._cache[key] = self._compute(key)
    return self._cache[key]

  def _compute(self, key):
    bh, n = self.bh, self.n
    if key == "bk_fwd":
      a, off, _ = bench_rows.bk_inputs(bh, n)
      return bench_rows.reference_float64(a, off, off, bench_rows.Z)
    if key == "bk_bwd":
      a, off, w = bench_rows.bk_inputs(bh, n)
      return bench_rows.reference_grad_float64(a, off, off, bench_rows.Z, w)
    if key == "lru_fwd":
      x, lam, _ = bench_rows.lru_inputs(bh, n)
      return bench_rows.lru_reference_float64(x, lam)
    if key == "lru_bwd":
      x, lam, w = bench_rows.lru_inputs(bh, n)
      return bench_rows.lru_reference_grad_float64(x, lam, w)
    q, k, v, w = bench_rows.attention_inputs(bh, n)
    out, dq = bench_rows.attention_reference_float64(q, k, v, w, bench_rows.attention_check_rows(n))
    return out if key == "attn_fwd" else dq


def _compile(fn, args):
  args = tuple(jnp.asarray(x) for x in args)
  t0 = time.perf_counter()
  compiled = jax.jit(fn).lower(*args).compile()
  compile_s = time.perf_counter() - t0
  mem = compiled.memory_analysis()
  peak = mem.temp_size_in_bytes + mem.output_size_in_bytes if mem is not None else None
  _compile.last_arg_bytes = mem.argument_size_in_bytes if mem is not None else None
  return (lambda: jax.block_until_ready(compiled(*args))), compile_s, peak


def prepare_row(name: str, bh: int, n: int, backward: bool, refs: _Refs) -> dict:
  """Builds (and compiles) one row: {"call", "check" (output -> check dict), compile_s, memory}.

  Returns {"skip": reason} when the row cannot run at this size (memory).
  """
  mem_note = "XLA memory_analysis: temp + output bytes"
  if name.startswith("original"):
    return _prepare_original(bh, n, backward, refs)
  if name.startswith("attention"):
    d = bench_rows.ATTN_HEAD_DIM
    est = 4.0 * bh * n * n * (5 if backward else 2)
    if est > ATTN_MAX_BYTES:
      return {"skip": f"N x N scores need ~{est / 2 ** 30:.0f} GiB > {ATTN_MAX_BYTES / 2 ** 30:.0f} GiB"}
    q, k, v, w = bench_rows.attention_inputs(bh, n, d=d)
    call, compile_s, peak = _compile(bench_rows.attention_fn(backward), (q, k, v, w))
    rows = bench_rows.attention_check_rows(n)
    pick = (lambda out: np.asarray(out[0][0, rows])) if backward else (
        lambda out: np.asarray(out[0, rows]))
    ref_key = "attn_bwd" if backward else "attn_fwd"
    checked = f"head 0, {len(rows)} query rows" + (": dL/dq" if backward else "")
  elif name.startswith("lru"):
    x, lam, w = bench_rows.lru_inputs(bh, n)
    call, compile_s, peak = _compile(bench_rows.lru_fn(backward), (x, lam, w))
    pick, ref_key, checked = np.asarray, "lru_bwd" if backward else "lru_fwd", "all outputs"
  else:
    method = {"theta/phi lax.scan c64": "theta_phi_c64",
              "theta/phi lax.scan c128": "theta_phi_c128",
              "sequential, 8-lane groups": "sequential_groups8"}.get(name, name)
    a, off, w = bench_rows.bk_inputs(bh, n)
    call, compile_s, peak = _compile(bench_rows.bk_fn(method, backward), (a, off, w))
    pick, ref_key, checked = np.asarray, "bk_bwd" if backward else "bk_fwd", "all outputs"
  return {"call": call, "check": lambda out: bench_rows.check(pick(out), refs.get(ref_key)),
          "compile_s": compile_s, "peak_bytes": peak, "memory_measured": mem_note,
          "checked": checked + (" (gradient)" if backward and ref_key != "attn_bwd" else "")}


def _prepare_original(bh, n, backward, refs):
  import torch  # the `[bench]` extra
  from bk import torch_reference
  a, off, w = bench_rows.bk_inputs(bh, n)
  ta, toff, tw = torch.tensor(a), torch.tensor(off), torch.tensor(np.moveaxis(w, 0, -1))
  fwd = lambda: torch_reference.theta_phi_diagonal(ta, toff, toff)
  note = "analytic: theta, phi lists + stacked copies, complex128 (64 bytes per token)"
  if not backward:
    return {"call": fwd, "check": lambda out: bench_rows.check(out.numpy(), refs.get("bk_fwd")),
            "compile_s": 0.0, "peak_bytes": 64 * bh * n, "memory_measured": note,
            "checked": "all outputs"}

  def call():
    x = ta.clone().requires_grad_(True)
    out = torch_reference.BKCoreFunction.apply(x, toff, toff)
    (out * tw).sum().backward()
    return x.grad

  def check(grad):
    # The original's backward is its hybrid GRAD_BLEND formula, not the gradient of its forward:
    # validity = its forward output is right at this size and the gradient is finite; the gradient's
    # error vs the exact float64 gradient is stated (grad_rel_err), not used to invalidate.
    res = bench_rows.check(fwd().numpy(), refs.get("bk_fwd"))
    g = grad.numpy()
    if res["valid"] and not np.all(np.isfinite(g)):
      res.update(valid=False, reason="non-finite gradient")
    ref = refs.get("bk_bwd")
    res["grad_rel_err"] = float(np.max(np.abs(g - ref)) / np.max(np.abs(ref)))
    return res
  return {"call": call, "check": check, "compile_s": 0.0, "peak_bytes": 72 * bh * n,
          "memory_measured": note + " + saved G", "checked": "forward output (backward is the "
          "original's approximate hybrid gradient, its error vs exact is grad_rel_err)"}


def _timed(call) -> float:
  t0 = time.perf_counter()
  call()
  return time.perf_counter() - t0


def _interleaved(calls, reps: int) -> list[list[float]]:
  """reps rounds over calls, each round starting one later (rotating order): per-call times."""
  times = [[] for _ in calls]
  for rep in range(reps):
    for i in range(len(calls)):
      j = (i + rep) % len(calls)
      times[j].append(_timed(calls[j]))
  return times


def run_cell(bh: int, n: int, backward: bool, names, threads: int, too_slow: dict,
             refs: _Refs, log=print, fwd_rows=()) -> list[dict]:
  """One (B*H, N, mode) cell: compile + check every row, then time the valid ones interleaved.

  too_slow: {(row name, mode): (N, seconds) where its single call exceeded MAX_CALL_S} (updated;
  larger N skipped). fwd_rows: this size's forward rows; a row whose forward output was INVALID
  is INVALID forward+backward too (not run again).
  """
  mode = "fwd+bwd" if backward else "fwd"
  fwd_invalid = {r["method"]: r for r in fwd_rows if r["status"] == "INVALID"}
  rows, timed = [], []
  for name in names:
    row = {"batch_heads": bh, "n": n, "method": name, "mode": mode, "threads": threads}
    rows.append(row)
    slow_key = (name, mode)
    if backward and name in fwd_invalid:
      row.update(status="INVALID", reason="forward output invalid at this size: "
                 + fwd_invalid[name]["reason"], rel_err=fwd_invalid[name].get("rel_err"))
      continue
    if slow_key in too_slow and n > too_slow[slow_key][0]:
      row.update(status="SKIPPED", reason=f"single call took {too_slow[slow_key][1]:.1f} s at "
                 f"N = {too_slow[slow_key][0]} (> {MAX_CALL_S:g} s)")
      continue
    prep = prepare_row(name, bh, n, backward, refs)
    if "skip" in prep:
      row.update(status="SKIPPED", reason=prep["skip"])
      continue
    t0 = time.perf_counter()
    out = prep["call"]()
    first = time.perf_counter() - t0
    chk = prep["check"](out)
    del out
    row.update({k: prep[k] for k in ("compile_s", "peak_bytes", "memory_measured", "checked")})
    row.update(first_call_s=first, **{k: chk[k] for k in chk if k != "valid"})
    if not chk["valid"]:
      row["status"] = "INVALID"
    elif first > MAX_CALL_S:
      row.update(status="SKIPPED", reason=f"single call {first:.1f} s > {MAX_CALL_S:g} s")
      too_slow[slow_key] = (n, first)
    else:
      row["status"] = "timed"
      timed.append((row, prep["call"]))
  if timed:
    round_s = sum(r["first_call_s"] for r, _ in timed)
    reps = int(min(MAX_REPS, max(MIN_REPS, CELL_BUDGET_S // max(round_s, 1e-9))))
    # Attention is interleaved in its own group (same repetitions), after the O(N) rows: when its
    # large N x N calls were interleaved with them, the following calls of the other rows slowed
    # down for milliseconds (a 0.5 ms `sequential` call measured 4-13 ms; a 10 ms sleep before
    # each call did not prevent it and slowed every small call by ~0.3 ms, so neither is used).
    groups = [[k for k, (r, _) in enumerate(timed) if not r["method"].startswith("attention")],
              [k for k, (r, _) in enumerate(timed) if r["method"].startswith("attention")]]
    times = [None] * len(timed)
    for group in groups:
      for k, ts in zip(group, _interleaved([timed[k][1] for k in group], reps)):
        times[k] = ts
    for (row, _), ts in zip(timed, times):
      med = float(np.median(ts))
      row.update(seconds=med, min_s=float(min(ts)), max_s=float(max(ts)), reps=reps,
                 tokens_per_s=bh * n / med)
  for row in rows:
    log(_fmt_a(row))
  return rows


def _fmt_a(r: dict) -> str:
  head = f"[A] t={r['threads']} bh={r['batch_heads']:3d} N={r['n']:6d} {r['method']:26s} {r['mode']:8s}"
  if r["status"] != "timed":
    err = f" (rel err {r['rel_err']:.2g})" if r.get("rel_err") is not None else ""
    return f"{head} {r['status']}: {r.get('reason', '')}{err}"
  mem = f"{r['peak_bytes'] / 2 ** 20:9.2f} MiB" if r.get("peak_bytes") else "      n/a"
  return (f"{head} {r['tokens_per_s']:10.4g} tok/s  {r['seconds'] * 1e3:9.3f} ms "
          f"[{r['min_s'] * 1e3:.3f}, {r['max_s'] * 1e3:.3f}] x{r['reps']}  err {r['rel_err']:.1e}  "
          f"compile {r['compile_s']:4.1f}s  mem {mem}")


def _add_speedups(rows):
  base = {(r["batch_heads"], r["n"], r["mode"]): r["seconds"] for r in rows
          if r["method"].startswith("original") and r.get("seconds")}
  for r in rows:
    ref = base.get((r["batch_heads"], r["n"], r["mode"]))
    r["speedup_vs_original"] = ref / r["seconds"] if ref and r.get("seconds") else None


def _summary_a(rows) -> dict:
  get = lambda bh, n, m, mode: next((r for r in rows if (r["batch_heads"], r["n"], r["method"],
                                                         r["mode"]) == (bh, n, m, mode)), None)
  out = {}
  for bh, target in ((8, 30.0), (64, 5.0)):
    for mode in ("fwd", "fwd+bwd"):
      r = get(bh, 2048, "scan", mode)
      if r and r.get("speedup_vs_original"):
        out[f"speedup_bh{bh}_n2048_{mode}"] = r["speedup_vs_original"]
        out[f"target_bh{bh}_{mode}"] = target
        out[f"target_met_bh{bh}_n2048_{mode}"] = bool(r["speedup_vs_original"] >= target)
  return out


def _load_guard(monitor: benchmarking.LoadMonitor, args) -> None:
  """Between cells: stop early (exit 2, nothing written) once the machine is no longer idle (the
  start load above the limit, or other processes using > 0.25 cores on average so far)."""
  benchmarking.refuse_if_loaded(monitor, args.out, args.max_load)


def part_a(args, monitor=None) -> dict:
  seq_lens = (128, 512) if args.quick else A_SEQ_LENS
  batch_heads = (1, 8) if args.quick else A_BATCH_HEADS
  if args.a_seq_lens:
    seq_lens = tuple(int(x) for x in args.a_seq_lens.split(","))
  if args.a_batch_heads:
    batch_heads = tuple(int(x) for x in args.a_batch_heads.split(","))
  names = A_ROWS
  rows = []
  for bh in batch_heads:
    too_slow = {}
    for n in seq_lens:
      refs = _Refs(bh, n)
      fwd_rows = []
      for backward in (False, True):
        cell = run_cell(bh, n, backward, names, args.threads, too_slow, refs, fwd_rows=fwd_rows)
        fwd_rows = cell
        rows += cell
        if monitor is not None:
          _load_guard(monitor, args)
  _add_speedups(rows)
  return {"part": "A", "threads": args.threads, "rows": rows, "summary": _summary_a(rows),
          "protocol": _protocol_text()}


def _protocol_text() -> str:
  return (f"per (B*H, N, mode) cell: every row compiled, run once and checked against float64 "
          f"(INVALID: non-finite, exact zeros, or max |x - ref| / max |ref| > {bench_rows.TOLERANCE:g}; "
          f"not timed); valid rows timed interleaved (rotating order), the same number of "
          f"repetitions for every row of the cell ({MIN_REPS}-{MAX_REPS}, ~{CELL_BUDGET_S:g} s per "
          f"cell; attention interleaved in its own group after the O(N) rows), median and min/max "
          f"wall time after block_until_ready; rows whose single call "
          f"exceeds {MAX_CALL_S:g} s are not timed (nor at larger N)")


# ----------------------------------------------------------------------------- part P: per token
def part_p(args, monitor=None) -> dict:
  """Per-token forward time vs N of the package methods (all (method, N) interleaved per B*H)."""
  seq_lens = (1024, 4096) if args.quick else P_SEQ_LENS
  batch_heads = (1, 8) if args.quick else A_BATCH_HEADS
  rows = []
  for bh in batch_heads:
    cases = []
    for n in seq_lens:
      refs = _Refs(bh, n)
      for m in P_METHODS:
        prep = (_prepare_loop_only(bh, n, refs) if m.endswith("loop only")
                else prepare_row(m, bh, n, False, refs))
        out = prep["call"]()
        chk = prep["check"](out)
        row = {"batch_heads": bh, "n": n, "method": m, "threads": args.threads,
               "default": m == core.default_method(), "rel_err": chk["rel_err"],
               "status": "timed" if chk["valid"] else "INVALID", "reason": chk["reason"],
               "compile_s": prep["compile_s"], "peak_bytes": prep["peak_bytes"],
               "working_set_bytes": prep["peak_bytes"] + _compile.last_arg_bytes}
        rows.append(row)
        if chk["valid"]:
          cases.append((row, prep["call"]))
    reps = 5 if args.quick else 9
    times = _interleaved([c for _, c in cases], reps)
    for (row, _), ts in zip(cases, times):
      per = [t / (bh * row["n"]) * 1e9 for t in ts]
      row.update(ns_per_token=float(np.median(per)), ns_min=min(per), ns_max=max(per), reps=reps)
    for row in rows[-len(seq_lens) * len(P_METHODS):]:
      print(f"[P] t={args.threads} bh={bh:3d} N={row['n']:6d} {row['method']:10s} "
            + (f"{row['ns_per_token']:8.1f} ns/token [{row['ns_min']:.1f}, {row['ns_max']:.1f}]  "
               f"working set {row['working_set_bytes'] / 2 ** 20:.2f} MiB" if row["status"] == "timed"
               else f"INVALID: {row['reason']}"), flush=True)
    if monitor is not None:
      _load_guard(monitor, args)
  ratios = {}
  lo, hi = min(seq_lens), max(seq_lens)
  for bh in batch_heads:
    for m in P_METHODS:
      r = {row["n"]: row for row in rows if row["batch_heads"] == bh and row["method"] == m}
      if r[lo].get("ns_per_token") and r[hi].get("ns_per_token"):
        ratios[f"{m}_bh{bh}_n{hi}_vs_n{lo}"] = r[hi]["ns_per_token"] / r[lo]["ns_per_token"]
  return {"part": "P", "threads": args.threads, "rows": rows, "ratios": ratios,
          "caches": _cpu_caches()}


def _prepare_loop_only(bh, n, refs):
  """method="sequential" without its layout work: the lax.scan alone on [N, 2 B*H] inputs.

  Checked: 1 / (left denominators) = the causal (left-truncated) float64 resolvent.
  """
  a, off, _ = bench_rows.bk_inputs(bh, n)
  call, compile_s, peak = _compile(bench_rows.loop_only_fn, bench_rows.fused_loop_inputs(a, off))
  ref = bench_rows.reference_float64(a, off, off, bench_rows.Z, causal=True)

  def check(out):
    d = np.asarray(out[0][:, :bh], np.float64) + 1j * np.asarray(out[1][:, :bh], np.float64)
    return bench_rows.check((1.0 / d).T, ref)
  return {"call": call, "check": check, "compile_s": compile_s, "peak_bytes": peak}


def _cpu_caches() -> dict:
  out = {}
  base = "/sys/devices/system/cpu/cpu0/cache"
  try:
    for d in sorted(os.listdir(base)):
      if not d.startswith("index"):
        continue
      read = lambda f: open(os.path.join(base, d, f)).read().strip()
      out[f"L{read('level')}{read('type')[0].lower()}"] = read("size")
  except OSError:
    pass
  return out


def _rel_err(x, ref):
  x = np.asarray(x, np.complex128)
  finite = np.isfinite(x)
  err = float(np.max(np.abs(x - ref) / np.abs(ref))) if finite.all() else float("inf")
  return err, int((~finite).sum())


def part_b(args) -> dict:
  import torch
  from bk import torch_reference
  seq_lens = (16, 128, 1024) if args.quick else B_SEQ_LENS
  rows = []
  for z in B_SHIFTS:
    for n in seq_lens:
      a, off, _ = _inputs(4, n, seed=n)
      ref = reference_float64(a, off, off, z)
      ta, toff = torch.tensor(a), torch.tensor(off)
      row = {"z": str(z), "n": n}
      with np.errstate(all="ignore"):
        for name, fn in (
            ("raw_theta_phi_c64", lambda: torch_reference.theta_phi_diagonal(
                ta, toff, toff, z, dtype=torch.complex64, postprocess=False).numpy()),
            ("original_c128_postprocessed", lambda: torch_reference.theta_phi_diagonal(
                ta, toff, toff, z).numpy()),
            ("mobius_scan_c64", lambda: core.resolvent_diagonal(a, off, off, np.complex64(z),
                                                                method="scan")),
            ("mobius_scan_block1_c64", lambda: core.resolvent_diagonal(
                a, off, off, np.complex64(z), method="scan", block_size=1)),
            ("sequential_c64", lambda: core.resolvent_diagonal(
                a, off, off, np.complex64(z), method="sequential"))):
          row[name], row[name + "_nonfinite"] = _rel_err(fn(), ref)
      rows.append(row)
      print("[B] " + " ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                              for k, v in row.items() if not k.endswith("nonfinite")), flush=True)
  return {"part": "B", "reference": "float64 continued fraction (NumPy)", "rows": rows,
          "inputs": "a = -2 + U(-3, 3), b = c = 1, 4 sequences; max relative error over all i"}


def part_c(args) -> dict:
  n, bh = 128, 8
  a, off, w = _inputs(bh, n, seed=7)
  g_hat = w[0].astype(np.float64) + 1j * w[1]          # dL/dRe G + i dL/dIm G
  exact = []
  for row_a in a.astype(np.float64):                   # dense float64 Jacobian: dG_jj/da_i = -G_ij G_ji
    mat = np.diag(row_a - 1j) + np.diag(np.ones(n - 1), 1) + np.diag(np.ones(n - 1), -1)
    g = np.linalg.inv(mat)
    exact.append(g * g.T)
  exact = np.stack(exact)
  exact_grad = -np.real(np.einsum("bj,bji->bi", np.conj(g_hat), exact))
  cosine = lambda x: float(np.sum(x * exact_grad) / np.linalg.norm(x) / np.linalg.norm(exact_grad))
  rows = []

  def add(name, blend, grad):
    grad = np.asarray(grad, np.float64)
    rows.append({"gradient": name, "grad_blend": blend, "cosine_vs_exact": cosine(grad),
                 "max_rel_err_vs_exact": float(np.max(np.abs(grad - exact_grad)) /
                                               np.max(np.abs(exact_grad)))})
    print(f"[C] {name:28s} alpha={blend}  cosine={rows[-1]['cosine_vs_exact']:.4f}", flush=True)

  add("exact (autodiff, c64)", None, bench_rows.bk_fn("scan", True)(a, off, w))
  for legacy in (False, True):
    for blend in C_BLENDS:
      fn = lambda a: jnp.sum(jnp.asarray(w[0]) * jnp.real(g := core.resolvent_diagonal(
          a, off, off, 1j, gradient="hybrid_legacy" if legacy else "hybrid",
          grad_blend=blend)) + jnp.asarray(w[1]) * jnp.imag(g))
      add("hybrid_legacy (Nov-14)" if legacy else "hybrid (conj-correct)", blend,
          jax.grad(fn)(jnp.asarray(a)))
  import torch
  from bk import torch_reference
  x = torch.tensor(a).requires_grad_(True)
  out = torch_reference.BKCoreFunction.apply(x, torch.tensor(off), torch.tensor(off))
  (out * torch.tensor(np.moveaxis(w, 0, -1))).sum().backward()
  add("original torch BKCoreFunction", torch_reference.GRAD_BLEND, x.grad.numpy())
  return {"part": "C", "rows": rows, "setup": f"N={n}, {bh} sequences, z=i, random upstream "
          "gradient; exact = float64 dense Jacobian -sum_j Re(conj(g_hat_j) G_ij G_ji)"}


def part_d(args) -> dict | None:
  try:
    from bk import bench_lm
  except ImportError as e:
    print(f"[D] skipped: bk.bench_lm is not available ({e})", flush=True)
    return None
  return bench_lm.run_part_d(args)


def parse_args(argv=None):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--parts", default="A,P,B,C", help="comma-separated subset of A,P,B,C,D")
  p.add_argument("--out", default="bench_results/bk_core_bench.json", help="JSON output path")
  p.add_argument("--merge", action="store_true",
                 help="add this run's parts to an existing --out (e.g. a second thread count)")
  p.add_argument("--quick", action="store_true", help="small grids (smoke run)")
  p.add_argument("--threads", type=int, default=1,
                 help="CPUs for XLA (sched_setaffinity) and torch.set_num_threads")
  p.add_argument("--max-load", type=float, default=benchmarking.IDLE_LOAD,
                 help="refuse to write the result if the 1-minute load average exceeds this")
  p.add_argument("--a_seq_lens", default=None, help="[A] comma-separated N (default: the grid)")
  p.add_argument("--a_batch_heads", default=None, help="[A] comma-separated B*H (default 1,8,64)")
  # Part D options (read by bk.bench_lm.run_part_d).
  p.add_argument("--steps", type=int, default=None, help="[D] training steps per model")
  p.add_argument("--seq_lens", default=None, help="[D] comma-separated sequence lengths")
  p.add_argument("--tokens_per_step", type=int, default=None, help="[D] tokens per batch")
  p.add_argument("--eval_tokens", type=int, default=None, help="[D] validation tokens")
  p.add_argument("--wikitext", default=None, help="[D] directory with wikitext-2 files")
  p.add_argument("--skip_presets", action="store_true", help="[D] skip the preset rows")
  args = p.parse_args(argv)
  parts = [x.strip().upper() for x in args.parts.split(",") if x.strip()]
  bad = [x for x in parts if x not in "ABCDP" or len(x) != 1]
  if bad:
    p.error(f"--parts={args.parts!r} is invalid: allowed a comma-separated subset of A,P,B,C,D")
  args.parts = parts
  return args


def _part_key(part: str, threads: int) -> str:
  return f"{part}_threads{threads}" if part in "AP" else part


def main(argv=None) -> dict:
  args = parse_args(argv)
  cpus = benchmarking.pin_threads(args.threads)   # before XLA starts its thread pool
  jax.config.update("jax_enable_x64", True)       # the complex128 theta/phi row; inputs stay float32
  try:
    import torch
    torch.set_num_threads(args.threads)
  except ImportError:
    torch = None
  monitor = benchmarking.LoadMonitor()
  t0 = time.perf_counter()
  run_meta = {"jax": jax.__version__, "torch": torch.__version__ if torch else None,
              "device": str(jax.devices()[0]), "platform": platform.platform(),
              "cpu_count": os.cpu_count(), "cpus_used": cpus, "threads": args.threads,
              "torch_threads": torch.get_num_threads() if torch else None,
              "quick": args.quick, "parts": args.parts, "caches": _cpu_caches(),
              "default_method": core.default_method()}
  result = {}
  for part, fn in (("A", part_a), ("P", part_p), ("B", part_b), ("C", part_c), ("D", part_d)):
    if part in args.parts:
      out = fn(args, monitor) if part in "AP" else fn(args)
      if out is not None:
        result[_part_key(part, args.threads)] = out
      monitor.sample()
  run_meta["wall_s"] = time.perf_counter() - t0
  run_meta.update(monitor.record())
  benchmarking.refuse_if_loaded(monitor, args.out, args.max_load)
  if args.merge and os.path.exists(args.out):
    with open(args.out) as f:
      merged = json.load(f)
  else:
    merged = {"runs": []}
  merged.update(result)
  merged["runs"].append(run_meta)
  os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
  with open(args.out, "w") as f:
    json.dump(merged, f, indent=1, default=str)
  print(f"wrote {args.out} ({run_meta['wall_s']:.0f} s, load {run_meta['load_avg_samples']})")
  return merged


if __name__ == "__main__":
  main()
