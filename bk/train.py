"""Training and evaluation of the ResNet-BK language model (and its Transformer baseline).

train_and_evaluate(config, workdir) trains on config.data, evaluates validation perplexity on
held-out text (never a training average) beside the corpus' add-one unigram perplexity, writes
metrics, checkpoints, figures and results/final.json, and resumes from the latest checkpoint.
"""
from __future__ import annotations

import json
import os
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import logging

from bk import compress as compress_lib
from bk import data as data_lib
from bk import interpret
from bk import model as model_lib
from common import checkpoint as checkpoint_lib
from common import config_validation as cv
from common import loop
from common import metrics as metrics_lib
from common import plots
from common import schedules
from common import train_state

PyTree = Any


def validate_config(config) -> None:
  """One clear ConfigError for any invalid field."""
  cv.check_in(config, "data.corpus", data_lib.CORPORA)
  cv.check_in(config, "data.tokenizer", data_lib.TOKENIZERS)
  cv.check_in(config, "data.word_split", data_lib.WORD_SPLITS)
  for f in ("data.seq_len", "data.batch_size", "data.eval_batch_size", "model.d_model",
            "model.num_layers", "model.max_len", "model.num_experts", "model.num_heads",
            "model.attn_heads", "model.expert_mult", "train.num_steps", "train.log_every",
            "train.save_every"):
    cv.check_int(config, f, min_value=1)
  for f in ("data.eval_max_batches", "model.transformer_mlp_dim", "model.koopman_dim",
            "optim.warmup_steps", "train.eval_every"):
    cv.check_int(config, f, min_value=0)
  cv.check_int(config, "model.top_k", 1, config.model.num_experts)
  cv.check_in(config, "model.arch", model_lib.ARCHS)
  cv.check_in(config, "model.mixer", model_lib.MIXERS)
  cv.check_int(config, "model.lru_state_dim", min_value=0)
  cv.check_range(config, "model.lru_r_min", 0.0, 1.0, hi_open=True)
  cv.check_range(config, "model.lru_r_max", 0.0, 1.0, hi_open=True)
  cv.check(config.model.lru_r_min <= config.model.lru_r_max, "model.lru_r_min",
           config.model.lru_r_min, f"<= model.lru_r_max={config.model.lru_r_max}")
  cv.check_positive(config, "model.lru_max_phase")
  cv.check_in(config, "model.router", ("switch", "gumbel"))
  cv.check(config.model.router == "switch" or config.model.top_k == 1, "model.top_k",
           config.model.top_k, "1 with router='gumbel'")
  cv.check_in(config, "model.dtype", tuple(model_lib.DTYPES))
  cv.check_in(config, "model.bk_method", ("auto", "scan", "sequential"))
  cv.check_in(config, "model.bk_gradient", ("exact", "hybrid", "hybrid_legacy"))
  cv.check_range(config, "model.grad_blend", 0.0, 1.0)
  cv.check_in(config, "model.transformer_match", ("total", "active"))
  cv.check(config.model.d_model % config.model.attn_heads == 0, "model.attn_heads",
           config.model.attn_heads, f"a divisor of model.d_model={config.model.d_model}")
  cv.check(config.data.seq_len <= config.model.max_len, "data.seq_len", config.data.seq_len,
           f"<= model.max_len={config.model.max_len} (rows of the position table)")
  cv.check_positive(config, "model.v_max", "model.z_imag_max", "model.z_imag_min",
                    "optim.learning_rate")
  cv.check_nonneg(config, "loss.load_balance_weight", "loss.koopman_weight",
                  "loss.physics_weight", "optim.weight_decay", "optim.grad_clip",
                  "compress.prune_threshold")
  cv.check_range(config, "model.dropout", 0.0, 1.0, hi_open=True)
  cv.check_range(config, "loss.koopman_ramp", 0.0, 1.0)
  cv.check_range(config, "optim.end_lr_ratio", 0.0, 1.0)
  cv.check(config.optim.warmup_steps <= config.train.num_steps, "optim.warmup_steps",
           config.optim.warmup_steps, f"<= train.num_steps={config.train.num_steps}")


def model_config(config, vocab_size: int) -> model_lib.ModelConfig:
  """The narrow model config; the Transformer's MLP width is matched to ResNet-BK when 0."""
  mcfg = model_lib.ModelConfig.from_config(config.model, vocab_size)
  if mcfg.arch == "transformer" and mcfg.transformer_mlp_dim == 0:
    bk_cfg = model_lib.ModelConfig.from_config(config.model, vocab_size, arch="resnet_bk")
    mlp = model_lib.matched_mlp_dim(bk_cfg, config.model.transformer_match)
    mcfg = model_lib.ModelConfig.from_config(config.model, vocab_size, transformer_mlp_dim=mlp)
  return mcfg


def make_optimizer(config) -> tuple[optax.GradientTransformation, optax.Schedule]:
  o = config.optim
  schedule = schedules.warmup_cosine(o.learning_rate, config.train.num_steps, o.warmup_steps,
                                     end_value=o.learning_rate * o.end_lr_ratio)
  chain = [optax.clip_by_global_norm(o.grad_clip)] if o.grad_clip > 0 else []
  chain.append(optax.adamw(schedule, weight_decay=o.weight_decay))
  return optax.chain(*chain), schedule


def token_nll(logits: jax.Array, y: jax.Array) -> jax.Array:
  """Per-token negative log-likelihood [B, N] (float32)."""
  return optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), y)


def _summaries(aux: dict, prefix: str = "") -> dict:
  """Flat scalars from the model's per-layer statistics (leading axis = layer)."""
  out = {}
  for k in ("v_mean", "v_std", "g_re_mean", "g_re_std", "g_im_mean", "g_im_std"):
    if k in aux:
      out[f"{prefix}bk/{k}"] = jnp.mean(aux[k])
  if "bk_scale" in aux:
    for i in range(aux["bk_scale"].shape[0]):
      out[f"{prefix}bk/bk_scale_l{i}"] = aux["bk_scale"][i]
  for k in ("lru_abs_lambda_mean", "lru_h_abs_mean", "lru_scale"):
    if k in aux:
      out[f"{prefix}lru/{k[4:]}"] = jnp.mean(aux[k])
  if "usage" in aux:
    usage = jnp.mean(aux["usage"], axis=0)
    for e in range(usage.shape[0]):
      out[f"{prefix}moe/usage_e{e}"] = usage[e]
    out[f"{prefix}moe/routing_entropy"] = jnp.mean(aux["routing_entropy"])
    out[f"{prefix}moe/load_balance"] = jnp.mean(aux["load_balance"])
  return out


def make_train_step(model, config, schedule, koopman_ramp_steps: int):
  lc = config.loss

  def train_step(state: train_state.TrainState, batch: dict):
    rng = train_state.step_rng(state)
    drop_rng, gumbel_rng = jax.random.split(rng)
    koop_w = lc.koopman_weight * jnp.minimum(
        1.0, state.step.astype(jnp.float32) / max(koopman_ramp_steps, 1))

    def loss_fn(params):
      logits, aux = model.apply({"params": params}, batch["x"], True,
                                rngs={"dropout": drop_rng, "gumbel": gumbel_rng})
      ce = jnp.mean(token_nll(logits, batch["y"]))
      total = ce
      if "load_balance" in aux:
        total = total + lc.load_balance_weight * jnp.mean(aux["load_balance"])
      if "koopman_loss" in aux:
        total = total + koop_w * aux["koopman_loss"]
      if "physics_loss" in aux:
        total = total + lc.physics_weight * aux["physics_loss"]
      return total, (ce, aux)

    (total, (ce, aux)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    leaves = jax.tree.leaves(grads)
    metrics = {
        "train/loss": ce, "train/total_loss": total, "train/ppl": jnp.exp(jnp.minimum(ce, 20.0)),
        "train/lr": schedule(state.step),
        "grad/norm": optax.tree.norm(grads),
        "grad/max": jnp.max(jnp.stack([jnp.max(jnp.abs(g)) for g in leaves])),
        "grad/nan_count": sum(jnp.sum(jnp.isnan(g)) for g in leaves).astype(jnp.float32),
        "grad/inf_count": sum(jnp.sum(jnp.isinf(g)) for g in leaves).astype(jnp.float32),
        **_summaries(aux)}
    if "koopman_loss" in aux:
      metrics.update({"aux/koopman_loss": aux["koopman_loss"], "aux/koopman_weight": koop_w})
    if "physics_loss" in aux:
      metrics["aux/physics_loss"] = aux["physics_loss"]
    return state.apply_gradients(grads=grads), metrics

  return train_step


def make_eval_step(model):
  @jax.jit
  def eval_step(params, batch):
    logits, _ = model.apply({"params": params}, batch["x"], False)
    nll = token_nll(logits, batch["y"])
    return jnp.sum(nll * batch["w"]), jnp.sum(batch["w"])
  return eval_step


def evaluate(eval_step, params, ids: np.ndarray, batch_size: int, seq_len: int,
             max_batches: int = 0) -> dict:
  """{"loss", "ppl", "tokens"}: exact token-mean cross-entropy over the split's windows."""
  tot, cnt = 0.0, 0.0
  for batch in data_lib.eval_batches(ids, batch_size, seq_len, max_batches):
    s, c = eval_step(params, batch)
    tot, cnt = tot + float(s), cnt + float(c)
  loss = tot / cnt
  return {"loss": loss, "ppl": float(np.exp(loss)), "tokens": cnt}


class _PerfWriter:
  """Adds step time and tokens/s (excluding eval / figure time) to the loop's log records."""

  def __init__(self, writer, tokens_per_step: int):
    self.writer, self.tokens_per_step = writer, tokens_per_step
    self.excluded, self.last_step = 0.0, None

  def write_scalars(self, step, scalars):
    scalars = dict(scalars)
    sps = scalars.get("perf/steps_per_sec")
    if sps and self.last_step is not None and step > self.last_step:
      n = step - self.last_step
      train_time = max(n / sps - self.excluded, 1e-9)
      scalars["perf/step_time_ms"] = 1e3 * train_time / n
      scalars["perf/tokens_per_sec"] = self.tokens_per_step * n / train_time
    if sps:
      self.last_step, self.excluded = step, 0.0
    self.writer.write_scalars(step, scalars)


def dashboard_groups(hist: dict) -> dict:
  """Dashboard panels: one per metric family rather than one per metric."""
  panels = {"perplexity": ("train/ppl", "val/ppl", "val/unigram_ppl", "val/ppl_compressed"),
            "loss": ("train/loss", "train/total_loss", "val/loss"),
            "learning rate": ("train/lr",), "grad norm / max": ("grad/norm", "grad/max"),
            "NaN / Inf grads": ("grad/nan_count", "grad/inf_count"),
            "tokens/s": ("perf/tokens_per_sec",), "step time (ms)": ("perf/step_time_ms",),
            "v mean / std": ("bk/v_mean", "bk/v_std"),
            "G_ii (x Im z)": ("bk/g_re_mean", "bk/g_re_std", "bk/g_im_mean", "bk/g_im_std"),
            "routing": ("moe/routing_entropy", "moe/load_balance"),
            "auxiliary losses": ("aux/koopman_loss", "aux/physics_loss")}
  groups = {k: [n for n in v if n in hist] for k, v in panels.items()}
  groups["bk_scale"] = sorted(n for n in hist if n.startswith("bk/bk_scale"))
  groups["expert usage"] = sorted(n for n in hist if n.startswith("moe/usage"))
  return {k: v for k, v in groups.items() if v}


def train_and_evaluate(config, workdir: str) -> dict:
  """Trains, evaluates, writes figures and results/final.json; returns the final metrics."""
  validate_config(config)
  data = data_lib.load(config.data)
  mcfg = model_config(config, data.vocab_size)
  model = model_lib.LanguageModel(mcfg)
  tx, schedule = make_optimizer(config)
  seq_len, batch_size = config.data.seq_len, config.data.batch_size
  counts = model_lib.param_counts(mcfg)
  logging.info("model %s: %s; <unk> rate %s", mcfg.arch, counts, data.unk_rate)

  def init_fn():
    rng = jax.random.key(config.seed)
    params = model_lib.init_params(mcfg, rng, seq_len)
    return train_state.TrainState.create(apply_fn=model.apply, params=params, tx=tx,
                                         rng=jax.random.fold_in(jax.random.PRNGKey(config.seed), 1))

  os.makedirs(workdir, exist_ok=True)
  ckpt = checkpoint_lib.Checkpointer(os.path.join(workdir, "checkpoints"),
                                     save_every=config.train.save_every, keep_latest=1,
                                     keep_best=1, best_metric="val/ppl")
  state, _, start_step = loop.restore_or_init(ckpt, init_fn)
  writer = metrics_lib.MetricWriter(workdir, config=config, resume_step=start_step)
  perf_writer = _PerfWriter(writer, batch_size * seq_len)
  results_dir = os.path.join(workdir, "results")
  os.makedirs(results_dir, exist_ok=True)

  train_step = loop.jit_train_step(make_train_step(
      model, config, schedule, int(config.loss.koopman_ramp * config.train.num_steps)))
  eval_step = make_eval_step(model)
  eval_bs, eval_max = config.data.eval_batch_size, config.data.eval_max_batches

  def batch_fn(step):
    return data_lib.train_batch(data.train, step, batch_size, seq_len, config.seed)

  def eval_fn(state, step):
    t0 = time.perf_counter()
    ev = evaluate(eval_step, state.params, data.valid, eval_bs, seq_len, eval_max)
    out = {"val/loss": ev["loss"], "val/ppl": ev["ppl"], "val/unigram_ppl": data.unigram_ppl_valid,
           "val/unk_rate": data.unk_rate["valid"]}
    if config.compress.int8 or config.compress.prune_threshold > 0:
      cparams, cstats = compress_lib.compress(state.params, int8=config.compress.int8,
                                              prune_threshold=config.compress.prune_threshold)
      cev = evaluate(eval_step, cparams, data.valid, eval_bs, seq_len, eval_max)
      out.update({"val/ppl_compressed": cev["ppl"], "compress/ratio": cstats["ratio"],
                  "compress/sparsity": cstats["sparsity"]})
    if config.train.figures and mcfg.arch == "resnet_bk" and mcfg.mixer == "bk":
      interpret.write_figures(model, state.params, data.valid[: seq_len + 1],
                              os.path.join(results_dir, "figures"), step)
    perf_writer.excluded += time.perf_counter() - t0
    return out

  state, status = loop.run(
      state, train_step, batch_fn, start_step=start_step, num_steps=config.train.num_steps,
      writer=perf_writer, checkpointer=ckpt, log_every=config.train.log_every,
      eval_every=config.train.eval_every or config.train.num_steps, eval_fn=eval_fn,
      progress_desc=f"bk {mcfg.arch}", key_metrics=("train/loss", "train/ppl", "val/ppl"))
  ckpt.close()
  hist = writer.export_history(results_dir)
  plots.dashboard(hist, os.path.join(results_dir, "dashboard.png"), groups=dashboard_groups(hist),
                  title=f"bk {mcfg.arch}", log_scale=("perplexity",))
  writer.close()
  if status != "done":
    return {"status": status}

  val = evaluate(eval_step, state.params, data.valid, eval_bs, seq_len)
  test = evaluate(eval_step, state.params, data.test, eval_bs, seq_len)
  final = {"status": status, "arch": mcfg.arch, "mixer": mcfg.mixer, "causal": mcfg.causal,
           "steps": int(
      config.train.num_steps), "params": counts, "val_ppl": val["ppl"], "test_ppl": test["ppl"],
           "val_tokens": val["tokens"], "unigram_val_ppl": data.unigram_ppl_valid,
           "unigram_test_ppl": data.unigram_ppl_test, "vocab_size": data.vocab_size,
           "unk_rate": data.unk_rate,
           "transformer_mlp_dim": mcfg.transformer_mlp_dim}
  with open(os.path.join(results_dir, "final.json"), "w") as f:
    json.dump(final, f, indent=1)
  note = "" if mcfg.causal else " (NON-CAUSAL: not a language-modelling result)"
  msg = (f"validation perplexity {val['ppl']:.2f} vs unigram {data.unigram_ppl_valid:.2f}; "
         f"test {test['ppl']:.2f} vs unigram {data.unigram_ppl_test:.2f}{note}")
  logging.info("%s", msg)
  print(msg, flush=True)
  return final
