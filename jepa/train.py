"""train_and_evaluate: H-JEPA / I-JEPA pre-training on the common runtime, then frozen-feature probes."""
from __future__ import annotations

import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from common import checkpoint as checkpoint_lib
from common import config_validation as cv
from common import loop
from common import metrics as metrics_lib
from common import plots
from common import sharding
from jepa import data as data_lib
from jepa import evaluation
from jepa import loss as loss_lib
from jepa import masking
from jepa import model as model_lib
from jepa import step as step_lib
from jepa import visualize

PROBE_SUBSET_SEED = 123  # fixed train subset for the probes (reference protocol)


def validate_config(config) -> None:
  """Checks the scalar fields (structured ones are checked by their builders)."""
  cv.check_in(config, "data.name", data_lib.DATASETS)
  cv.check_int(config, "data.image_size", min_value=1)
  cv.check_int(config, "data.train_limit", min_value=0)
  cv.check(0 < config.data.crop_scale[0] <= config.data.crop_scale[1] <= 1, "data.crop_scale",
           config.data.crop_scale, "a pair 0 < lo <= hi <= 1")
  cv.check(0 < config.data.crop_ratio[0] <= config.data.crop_ratio[1], "data.crop_ratio",
           config.data.crop_ratio, "a pair 0 < lo <= hi")
  for f in ("depth", "predictor_depth", "width", "predictor_width", "num_heads", "predictor_heads"):
    cv.check_int(config, f"model.{f}", min_value=1)
  cv.check_in(config, "loss.kind", loss_lib.LOSS_KINDS)
  cv.check_positive(config, "optim.learning_rate", "model.mlp_ratio")
  cv.check_nonneg(config, "optim.end_learning_rate", "optim.weight_decay", "optim.end_weight_decay",
                  "optim.grad_clip")
  cv.check_range(config, "optim.warmup_fraction", 0.0, 1.0)
  cv.check_range(config, "optim.b1", 0.0, 1.0, hi_open=True)
  cv.check_range(config, "optim.b2", 0.0, 1.0, hi_open=True)
  cv.check_int(config, "optim.grad_accum_steps", min_value=1)
  cv.check_range(config, "ema.start", 0.0, 1.0)
  cv.check_range(config, "ema.end", config.ema.start, 1.0)
  cv.check_in(config, "ema.schedule", ("linear", "cosine"))
  for f in ("batch_size", "num_steps", "log_every", "save_every"):
    cv.check_int(config, f"train.{f}", min_value=1)
  cv.check(config.train.batch_size % config.optim.grad_accum_steps == 0, "train.batch_size",
           config.train.batch_size, f"a multiple of optim.grad_accum_steps={config.optim.grad_accum_steps}")
  cv.check_int(config, "train.eval_every", min_value=0)
  cv.check_int(config, "train.keep_best", min_value=0)
  cv.check_in(config, "train.best_mode", ("min", "max"))
  cv.check_int(config, "eval.erank_samples", min_value=2000)
  cv.check_int(config, "eval.knn_k", min_value=1)
  cv.check_positive(config, "eval.knn_temperature", "eval.batch_size", "eval.during_train_samples")
  cv.check_int(config, "eval.probe_iterations", min_value=1)


def extract(feature_fn, params, images, batch_size: int, keys=("pooled",)) -> dict[str, np.ndarray]:
  """Runs the jitted feature fn over uint8 images in fixed-size batches (last one padded)."""
  out = {k: [] for k in keys}
  n = len(images)
  for s in range(0, n, batch_size):
    chunk = images[s:s + batch_size]
    pad = batch_size - len(chunk) if n > batch_size else 0
    if pad:
      chunk = np.concatenate([chunk, np.repeat(chunk[-1:], pad, 0)])
    feats = feature_fn(params, jnp.asarray(chunk))
    for k in keys:
      out[k].append(np.asarray(feats[k])[:len(chunk) - pad])
  return {k: np.concatenate(v) for k, v in out.items()}


def collapse_metrics(feature_fn, params, images, hier, erank_samples, batch_size, prefix) -> dict:
  """Std, mean norm and effective rank per level (token rows) and of the pooled features.

  Returns (metrics, pooled features [n, D]).
  """
  keys = ("pooled",) + tuple(f"level_{l}" for l in range(hier.num_levels))
  feats = extract(feature_fn, params, images, batch_size, keys)
  out = evaluation.collapse_stats(feats["pooled"], f"{prefix}/pooled")
  rng = np.random.default_rng(0)
  for l in range(hier.num_levels):
    rows = feats[f"level_{l}"].reshape(-1, feats[f"level_{l}"].shape[-1])
    if len(rows) > erank_samples:
      rows = rows[rng.choice(len(rows), erank_samples, replace=False)]
    out.update(evaluation.collapse_stats(rows, f"{prefix}/level_{l}"))
  return out, feats["pooled"]


def warn_on_collapse(metrics: dict, hier, floor: float, step: int) -> None:
  for l in range(hier.num_levels):
    erank = metrics[f"eval/level_{l}/effective_rank"]
    if erank < floor:
      logging.warning("!!! COLLAPSE WARNING at step %d: level %d effective rank %.3f < floor %.3f "
                      "(std %.3g). The representation is collapsing; check the EMA, LR and masks.",
                      step, l, erank, floor, metrics[f"eval/level_{l}/std"])


def probe_all(config, ds, feature_fn, encoders: dict, train_idx, test_idx) -> dict:
  """Linear probe and k-NN for each named encoder params, and for raw pixels."""
  e, results = config.eval, {}
  xtr, ytr = ds.train_images[train_idx], ds.train_labels[train_idx]
  xte, yte = ds.test_images[test_idx], ds.test_labels[test_idx]
  feats = {name: (extract(feature_fn, p, xtr, e.batch_size)["pooled"],
                  extract(feature_fn, p, xte, e.batch_size)["pooled"]) for name, p in encoders.items()}
  size = config.data.image_size
  to_pixels = lambda x: np.asarray(data_lib.resize(data_lib.normalize(jnp.asarray(x), ds.mean, ds.std),
                                                   size)).reshape(len(x), -1)
  feats["pixel"] = (to_pixels(xtr), to_pixels(xte))
  for name, (ftr, fte) in feats.items():
    prefix = "" if name == "trained" else f"{name}_"
    results[f"{prefix}linear_probe_accuracy"] = evaluation.linear_probe_accuracy(
        ftr, ytr, fte, yte, l2=e.probe_l2, iterations=e.probe_iterations, num_classes=ds.num_classes)
    results[f"{prefix}knn_accuracy"] = evaluation.knn_accuracy(
        ftr, ytr, fte, yte, k=e.knn_k, temperature=e.knn_temperature, num_classes=ds.num_classes)
  return results


def train_and_evaluate(config, workdir: str) -> dict | None:
  """Pre-trains, checkpoints (resumable), evaluates; returns the final results dict (None if preempted)."""
  validate_config(config)
  try:  # bad data paths and structured fields: one clear line from the CLI, not a traceback
    ds = data_lib.load_dataset(config.data)
    vit = model_lib.vit_config(config.model, config.data.image_size, ds.train_images.shape[-1])
    hier = loss_lib.hierarchy_from_config(config.hierarchy, vit.depth, vit.grid)
    budget = masking.mask_budget(vit.grid, config.mask)
  except (ValueError, FileNotFoundError) as e:
    if isinstance(e, cv.ConfigError):
      raise
    raise cv.ConfigError(str(e)) from e
  logging.info("jepa: grid %s, %d levels (%s), K_ctx=%d, K_tgt=%d x %d blocks, %d train images",
               vit.grid, hier.num_levels, hier.kind, budget.context_tokens, budget.max_target_tokens,
               budget.num_blocks, len(ds.train_images))
  mesh = sharding.make_mesh()
  sharding.check_batch_divisible(config.train.batch_size, mesh, "train.batch_size")
  sched = step_lib.make_schedules(config)
  tx = step_lib.make_optimizer(config, sched)
  init_fn = lambda: step_lib.init_state(config, vit, hier, tx, jax.random.PRNGKey(config.seed))
  t = config.train
  ckpt = checkpoint_lib.Checkpointer(os.path.join(workdir, "checkpoints"), save_every=t.save_every,
                                     keep_latest=1, keep_best=t.keep_best, best_metric=t.best_metric,
                                     best_mode=t.best_mode)
  state, _, start = loop.restore_or_init(ckpt, init_fn, mesh=mesh)
  writer = metrics_lib.MetricWriter(workdir, config=config, resume_step=start, tensorboard=t.tensorboard)
  results_dir = os.path.join(workdir, "results")
  os.makedirs(results_dir, exist_ok=True)
  feature_fn = step_lib.make_feature_fn(vit, hier, ds.mean, ds.std)
  train_step = loop.jit_train_step(step_lib.make_train_step(config, vit, hier, sched, ds.mean, ds.std), mesh)
  n_train = len(ds.train_images)
  batch_fn = lambda s: {"images": ds.train_images[data_lib.batch_indices(s, t.batch_size, n_train, config.seed)]}

  if start == 0:  # the mask grid, on the first images of the first batch
    imgs = batch_fn(0)["images"][:8]
    masks = jax.jit(lambda k: masking.sample_masks(k, vit.grid, len(imgs), config.mask))(jax.random.PRNGKey(0))
    sized = np.asarray(data_lib.resize(jnp.asarray(imgs, jnp.float32), vit.image_size))
    visualize.save_mask_grid(os.path.join(results_dir, "masks.png"), sized, vit.patch_size, masks)

  e = config.eval
  bank_idx = evaluation.subset_indices(n_train, e.during_train_samples, 1)
  query_idx = evaluation.subset_indices(len(ds.test_images), e.during_train_samples, 2)

  def eval_fn(state, step):
    params = state.target.params
    bank = extract(feature_fn, params, ds.train_images[bank_idx], e.batch_size)["pooled"]
    out, query = collapse_metrics(feature_fn, params, ds.test_images[query_idx], hier, e.erank_samples,
                                  e.batch_size, "eval")
    out["eval/knn_accuracy"] = evaluation.knn_accuracy(
        bank, ds.train_labels[bank_idx], query, ds.test_labels[query_idx], k=e.knn_k,
        temperature=e.knn_temperature, num_classes=ds.num_classes)
    warn_on_collapse(out, hier, e.erank_floor, step)
    return out

  plot_fn = lambda step: plots.dashboard(writer.history(), os.path.join(results_dir, "dashboard.png"),
                                         title=f"jepa ({hier.kind}, {hier.num_levels} levels)")
  t0 = time.perf_counter()
  state, status = loop.run(state, train_step, batch_fn, start_step=start, num_steps=t.num_steps,
                           writer=writer, checkpointer=ckpt, log_every=t.log_every,
                           eval_every=t.eval_every or t.num_steps, eval_fn=eval_fn,
                           plot_every=t.plot_every, plot_fn=plot_fn, mesh=mesh, progress_desc="jepa",
                           key_metrics=("train/loss", "eval/knn_accuracy"))
  train_seconds = time.perf_counter() - t0
  if status != "done":
    writer.close()
    ckpt.close()
    return None

  # Final evaluation of frozen features: trained target encoder vs the same random init vs pixels.
  train_idx = evaluation.subset_indices(n_train, e.train_samples, PROBE_SUBSET_SEED)
  test_idx = evaluation.subset_indices(len(ds.test_images), e.test_samples, PROBE_SUBSET_SEED)
  random_params = init_fn().target.params
  results = probe_all(config, ds, feature_fn, {"trained": state.target.params, "random_init": random_params},
                      train_idx, test_idx)
  erank_imgs = ds.test_images[test_idx][:e.erank_samples]
  trained_c, _ = collapse_metrics(feature_fn, state.target.params, erank_imgs, hier, e.erank_samples,
                               e.batch_size, "c")
  random_c, _ = collapse_metrics(feature_fn, random_params, erank_imgs, hier, e.erank_samples, e.batch_size, "c")
  levels = [f"level_{l}" for l in range(hier.num_levels)] + ["pooled"]
  results["effective_rank"] = {lv: trained_c[f"c/{lv}/effective_rank"] for lv in levels}
  results["effective_rank_uncentred"] = {lv: trained_c[f"c/{lv}/effective_rank_uncentred"] for lv in levels}
  results["random_init_effective_rank"] = {lv: random_c[f"c/{lv}/effective_rank"] for lv in levels}
  results["feature_std"] = {lv: trained_c[f"c/{lv}/std"] for lv in levels}
  results["random_init_feature_std"] = {lv: random_c[f"c/{lv}/std"] for lv in levels}
  results.update(steps=t.num_steps, resumed_from_step=start, train_seconds=round(train_seconds, 1),
                 probe_train_samples=len(train_idx), probe_test_samples=len(test_idx),
                 hierarchy=hier.kind, hierarchy_weights=list(hier.weights), dataset=config.data.name)
  flat = {f"final/{k}": v for k, v in results.items() if isinstance(v, float)}
  flat.update({f"final/effective_rank/{k}": v for k, v in results["effective_rank"].items()})
  writer.write_scalars(t.num_steps, flat)
  with open(os.path.join(results_dir, "final_results.json"), "w") as f:
    json.dump(results, f, indent=2, sort_keys=True)
  writer.export_history(results_dir)
  plot_fn(t.num_steps)
  logging.info("jepa final: %s", json.dumps({k: v for k, v in results.items() if isinstance(v, float)}))
  writer.close()
  ckpt.close()
  return results
