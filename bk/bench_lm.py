"""Benchmark part D: ResNet-BK (causal) vs a causal Transformer at equal parameters.

For each context length N the two models (same embeddings, width, depth; the Transformer's MLP
width is matched to ResNet-BK's total non-embedding parameters) are trained from scratch for the
same number of steps on the same token budget per step (batch = tokens_per_step / N), then
evaluated on held-out text. Reported: validation perplexity (token-weighted, held-out; never a
training average), training and forward tokens/s in steady state (compile time separately),
and XLA's compiled temporary memory of the train step. Also: the non-causal ablation (labelled:
not a language-modelling result), the presets (each real flag measured) and a BK-heads sweep.

  python -m bk.bench_lm [--quick] [--steps 200] [--seq-lens 128,512,2048]
                        [--wikitext /path/to/wikitext-2] [--sections main,presets]
                        [--out bench_results/bk_lm.json]
`python -m bk.bench --parts D` calls run_part_d(args) with the same fields.
"""
from __future__ import annotations

import argparse
import json
import os
import time

import jax
import numpy as np

from bk import compress as compress_lib
from bk import data as data_lib
from bk import model as model_lib
from bk import train as train_lib
from common import train_state
from configs import bk as bk_configs

SEQ_LENS = (128, 256, 512, 1024, 2048, 4096)
_DATA_CACHE: dict = {}


def _data(cfg):
  key = (cfg.data.corpus, cfg.data.path, cfg.data.tokenizer, cfg.data.vocab_size)
  if key not in _DATA_CACHE:
    _DATA_CACHE[key] = data_lib.load(cfg.data)
  return _DATA_CACHE[key]


def bench_config(variant: str, seq_len: int, tokens_per_step: int, steps: int,
                 corpus: str = "shakespeare", path: str = ""):
  """The quick-size config of `variant` at context N = seq_len and the given token budget."""
  cfg = bk_configs.get_config("quick" if variant == "bk" else f"quick_{variant}")
  cfg.data.corpus, cfg.data.path = corpus, path
  cfg.data.seq_len = seq_len
  cfg.data.batch_size = max(1, tokens_per_step // seq_len)
  cfg.model.max_len = max(cfg.model.max_len, seq_len)
  cfg.train.num_steps = steps
  cfg.optim.warmup_steps = min(cfg.optim.warmup_steps, steps // 4)
  return cfg


def run_one(cfg, *, eval_tokens: int, timing_steps: int = 5) -> dict:
  """Trains cfg for cfg.train.num_steps and evaluates; returns one result row."""
  train_lib.validate_config(cfg)
  data = _data(cfg)
  mcfg = train_lib.model_config(cfg, data.vocab_size)
  model = model_lib.LanguageModel(mcfg)
  tx, schedule = train_lib.make_optimizer(cfg)
  n, b = cfg.data.seq_len, cfg.data.batch_size
  rng = jax.random.key(cfg.seed)
  params = model_lib.init_params(mcfg, rng, n)
  state = train_state.TrainState.create(apply_fn=model.apply, params=params, tx=tx,
                                        rng=jax.random.fold_in(rng, 1))
  step_fn = jax.jit(train_lib.make_train_step(
      model, cfg, schedule, int(cfg.loss.koopman_ramp * cfg.train.num_steps)), donate_argnums=0)
  batch_fn = lambda s: data_lib.train_batch(data.train, s, b, n, cfg.seed)
  t0 = time.perf_counter()
  compiled = step_fn.lower(state, batch_fn(0)).compile()
  compile_s = time.perf_counter() - t0
  mem = compiled.memory_analysis()
  temp_mb = getattr(mem, "temp_size_in_bytes", 0) / 2**20 if mem is not None else float("nan")
  steps = cfg.train.num_steps
  times = []
  for s in range(steps):
    t = time.perf_counter()
    state, metrics = compiled(state, batch_fn(s))
    if s >= steps - timing_steps:
      jax.block_until_ready(metrics)
      times.append(time.perf_counter() - t)
  jax.block_until_ready(state.params)
  train_loss = float(metrics["train/loss"])
  eval_step = train_lib.make_eval_step(model)
  max_batches = max(1, eval_tokens // (cfg.data.eval_batch_size * n))
  ev = train_lib.evaluate(eval_step, state.params, data.valid, cfg.data.eval_batch_size, n,
                          max_batches)
  # Forward throughput: one more timed eval batch after the evaluation compiled the step.
  batch = next(data_lib.eval_batches(data.valid, cfg.data.eval_batch_size, n, 1))
  t = time.perf_counter()
  jax.block_until_ready(eval_step(state.params, batch))
  fwd_s = time.perf_counter() - t
  counts = model_lib.param_counts(mcfg)
  row = {"arch": mcfg.arch, "causal": mcfg.causal, "seq_len": n, "batch": b, "steps": steps,
         "val_ppl": ev["ppl"], "val_tokens": ev["tokens"], "unigram_ppl": data.unigram_ppl_valid,
         "final_train_loss": train_loss,
         "train_tokens_per_s": b * n / float(np.median(times)),
         "fwd_tokens_per_s": cfg.data.eval_batch_size * n / fwd_s,
         "compile_s": compile_s, "train_temp_mb": temp_mb,
         "params_non_embedding": counts["non_embedding"],
         "params_active_non_embedding": counts["active_non_embedding"],
         "params_total": counts["total"], "num_heads": mcfg.num_heads,
         "transformer_mlp_dim": mcfg.transformer_mlp_dim if mcfg.arch == "transformer" else 0,
         "dtype": mcfg.dtype, "remat": mcfg.remat, "koopman_dim": mcfg.koopman_dim,
         "physics": mcfg.physics}
  if cfg.compress.int8 or cfg.compress.prune_threshold > 0:
    cparams, cstats = compress_lib.compress(state.params, int8=cfg.compress.int8,
                                            prune_threshold=cfg.compress.prune_threshold)
    cev = train_lib.evaluate(eval_step, cparams, data.valid, cfg.data.eval_batch_size, n,
                             max_batches)
    row.update({"val_ppl_compressed": cev["ppl"], "compression_ratio": cstats["ratio"],
                "sparsity": cstats["sparsity"]})
  return row


def throughput_one(cfg, *, timed_steps: int = 3) -> dict:
  """Steady-state train-step and forward tokens/s of cfg's model (no convergence; random data)."""
  train_lib.validate_config(cfg)
  mcfg = train_lib.model_config(cfg, cfg.data.vocab_size)
  model = model_lib.LanguageModel(mcfg)
  tx, schedule = train_lib.make_optimizer(cfg)
  n, b = cfg.data.seq_len, cfg.data.batch_size
  params = model_lib.init_params(mcfg, jax.random.key(0), n)
  state = train_state.TrainState.create(apply_fn=model.apply, params=params, tx=tx,
                                        rng=jax.random.PRNGKey(1))
  step_fn = jax.jit(train_lib.make_train_step(model, cfg, schedule, 1), donate_argnums=0)
  tokens = np.random.default_rng(0).integers(0, cfg.data.vocab_size, (b, n + 1), np.int32)
  batch = {"x": tokens[:, :-1], "y": tokens[:, 1:]}
  t0 = time.perf_counter()
  compiled = step_fn.lower(state, batch).compile()
  compile_s = time.perf_counter() - t0
  mem = compiled.memory_analysis()
  state, m = compiled(state, batch)
  jax.block_until_ready(m)
  times = []
  for _ in range(timed_steps):
    t = time.perf_counter()
    state, m = compiled(state, batch)
    jax.block_until_ready(m)
    times.append(time.perf_counter() - t)
  eval_step = train_lib.make_eval_step(model)
  ebatch = {**batch, "w": np.ones((b, n), np.float32)}
  jax.block_until_ready(eval_step(state.params, ebatch))
  t = time.perf_counter()
  jax.block_until_ready(eval_step(state.params, ebatch))
  fwd_s = time.perf_counter() - t
  return {"arch": mcfg.arch, "causal": mcfg.causal, "seq_len": n, "batch": b,
          "train_tokens_per_s": b * n / float(np.median(times)), "fwd_tokens_per_s": b * n / fwd_s,
          "compile_s": compile_s,
          "train_temp_mb": getattr(mem, "temp_size_in_bytes", 0) / 2**20 if mem else float("nan"),
          "params_non_embedding": model_lib.param_counts(mcfg)["non_embedding"]}


def run_part_d(args) -> dict:
  """Rows of part D + metadata. args fields (all optional): quick, steps, seq_lens,
  tokens_per_step, eval_tokens, wikitext (path), sections ("main,presets"), skip_presets,
  skip_ablation."""
  quick = bool(getattr(args, "quick", False))
  steps = int(getattr(args, "steps", None) or (60 if quick else 150))
  seq_lens = getattr(args, "seq_lens", None) or ((128, 512) if quick else SEQ_LENS)
  if isinstance(seq_lens, str):
    seq_lens = tuple(int(s) for s in seq_lens.split(","))
  tokens = int(getattr(args, "tokens_per_step", None) or 2048)
  eval_tokens = int(getattr(args, "eval_tokens", None) or (8192 if quick else 16384))
  corpora = [("shakespeare", "")]
  if getattr(args, "wikitext", None):
    corpora.append(("wikitext", args.wikitext))
  rows = []

  def add(section, cfg, **extra):
    t0 = time.perf_counter()
    row = {"section": section, "corpus": cfg.data.corpus, **extra,
           **run_one(cfg, eval_tokens=eval_tokens)}
    row["wall_s"] = time.perf_counter() - t0
    rows.append(row)
    print(_format_row(row), flush=True)

  sections = getattr(args, "sections", None) or (
      "main" if getattr(args, "skip_presets", False) else "main,presets")
  n0 = seq_lens[0]
  if "main" in sections:
    for corpus, path in corpora:
      for n in seq_lens:
        for variant in ("bk", "transformer"):
          add("bk_vs_transformer", bench_config(variant, n, tokens, steps, corpus, path))
    if not getattr(args, "skip_ablation", False):
      add("noncausal_ablation (NOT an LM result)", bench_config("noncausal", n0, tokens, steps))
  if "throughput" in sections:
    for n in seq_lens:
      for variant in ("bk", "transformer"):
        row = {"section": "throughput", **throughput_one(bench_config(variant, n, tokens, 1))}
        rows.append(row)
        print(f"throughput {row['arch']:<11} N={n:<5} B={row['batch']:<3} train "
              f"{row['train_tokens_per_s']:9.0f} tok/s fwd {row['fwd_tokens_per_s']:9.0f} tok/s "
              f"mem {row['train_temp_mb']:7.1f} MB compile {row['compile_s']:5.1f}s", flush=True)
  if "presets" in sections:
    for variant in ("step2", "step4", "step5", "full"):
      add(f"preset:{variant}", bench_config(variant, n0, tokens, steps))
    for h in ((1, 8) if not quick else (1,)):
      cfg = bench_config("bk", n0, tokens, steps)
      cfg.model.num_heads = h
      add(f"heads:{h}", cfg)
  return {"part": "D", "rows": rows, "summary": summarize(rows),
          "meta": {"steps": steps, "tokens_per_step": tokens, "eval_tokens": eval_tokens,
                   "seq_lens": list(seq_lens), "device": str(jax.devices()[0]),
                   "jax": jax.__version__, "config": "configs/bk.py:quick (sizes), N varied"}}


def summarize(rows: list[dict]) -> list[dict]:
  """Per (corpus, N): ResNet-BK / Transformer perplexity ratio and throughput ratio."""
  out = []
  main = [r for r in rows if r["section"] in ("bk_vs_transformer", "throughput")]
  for r in main:
    if r["arch"] != "resnet_bk":
      continue
    t = [x for x in main if x["arch"] == "transformer" and x["seq_len"] == r["seq_len"]
         and x["section"] == r["section"] and x.get("corpus") == r.get("corpus")]
    if t:
      t = t[0]
      ratio = r["val_ppl"] / t["val_ppl"] if "val_ppl" in r else float("nan")
      out.append({"section": r["section"], "corpus": r.get("corpus", "-"),
                  "seq_len": r["seq_len"], "ppl_ratio_bk_over_tf": ratio,
                  "train_speedup_bk_over_tf": r["train_tokens_per_s"] / t["train_tokens_per_s"],
                  "fwd_speedup_bk_over_tf": r["fwd_tokens_per_s"] / t["fwd_tokens_per_s"],
                  "ppl_target_met (<=1.1x)": ratio <= 1.1})
  return out


def _format_row(r: dict) -> str:
  extra = ""
  if "val_ppl_compressed" in r:
    extra = (f" | compressed ppl {r['val_ppl_compressed']:.1f} ratio "
             f"{r['compression_ratio']:.2f}x sparsity {r['sparsity']:.2f}")
  return (f"{r['section']:<38} {r['corpus']:<11} {r['arch']:<11} causal={r['causal']!s:<5} "
          f"N={r['seq_len']:<5} B={r['batch']:<3} ppl {r['val_ppl']:8.2f} (uni "
          f"{r['unigram_ppl']:.1f}) train {r['train_tokens_per_s']:9.0f} tok/s fwd "
          f"{r['fwd_tokens_per_s']:9.0f} tok/s mem {r['train_temp_mb']:7.1f} MB compile "
          f"{r['compile_s']:5.1f}s params {r['params_non_embedding']}{extra}")


def print_table(result: dict) -> None:
  print("\nPart D summary (ResNet-BK / Transformer, equal total non-embedding parameters)")
  print(f"{'corpus':<12} {'N':>5} {'ppl ratio':>10} {'train x':>8} {'fwd x':>8}  <=1.1x")
  for s in result["summary"]:
    print(f"{s['corpus']:<12} {s['seq_len']:>5} {s['ppl_ratio_bk_over_tf']:>10.3f} "
          f"{s['train_speedup_bk_over_tf']:>8.2f} {s['fwd_speedup_bk_over_tf']:>8.2f}  "
          f"{s['ppl_target_met (<=1.1x)']}")


def main(argv=None) -> dict:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--quick", action="store_true", help="fewer steps and lengths (smoke run)")
  p.add_argument("--steps", type=int, default=None, help="training steps per model")
  p.add_argument("--seq-lens", dest="seq_lens", default=None, help="e.g. 128,512,2048")
  p.add_argument("--tokens-per-step", dest="tokens_per_step", type=int, default=None)
  p.add_argument("--eval-tokens", dest="eval_tokens", type=int, default=None)
  p.add_argument("--wikitext", default=None, help="WikiText-2 directory (optional)")
  p.add_argument("--sections", default="main,presets",
                 help="main (BK vs Transformer over N + non-causal ablation), presets (+ heads), "
                 "throughput (tokens/s only, no training)")
  p.add_argument("--skip-ablation", dest="skip_ablation", action="store_true",
                 help="main section without the non-causal ablation row")
  p.add_argument("--out", default="bench_results/bk_lm.json")
  args = p.parse_args(argv)
  result = run_part_d(args)
  print_table(result)
  os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
  with open(args.out, "w") as f:
    json.dump(result, f, indent=1)
  print(f"wrote {args.out}")
  return result


if __name__ == "__main__":
  main()
