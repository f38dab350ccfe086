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
from jepa import monitor as monitor_lib
from jepa import step as step_lib
from jepa import visualize

PROBE_SUBSET_SEED = 123  # fixed train subset for the probes (reference protocol)
PROBE_FEATURES = {"last": "pooled", "last4": "pooled_last4"}  # eval.probe_features -> feature key


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
  cv.check_range(config, "eval.erank_drop", 0.0, 1.0, lo_open=True, hi_open=True)
  cv.check_range(config, "eval.std_drop", 0.0, 1.0, lo_open=True, hi_open=True)
  cv.check_in(config, "eval.probe_features", PROBE_FEATURES)


def extract(feature_fn, params, images, batch_size: int, keys=("pooled",), mesh=None) -> dict[str, np.ndarray]:
  """Runs the jitted feature fn over uint8 images in fixed-size batches, data-parallel over `mesh`.

  Each batch is padded to a multiple of the device count and split over the ("data",) axis; with
  several processes each decodes and feeds its own rows and the features are gathered to every
  host. Returns host arrays in image order.
  """
  mesh = mesh if mesh is not None else sharding.make_mesh()
  ndev, procs, proc = mesh.devices.size, jax.process_count(), jax.process_index()
  batch_size = -(-batch_size // ndev) * ndev
  params = sharding.replicate(params, mesh)
  out = {k: [] for k in keys}
  n = len(images)
  for s in range(0, n, batch_size):
    size = min(batch_size, n - s)
    padded = batch_size if n > batch_size else -(-size // ndev) * ndev
    local = padded // procs
    lo, hi = s + proc * local, min(s + (proc + 1) * local, s + size)
    chunk = np.asarray(images[lo:hi]) if hi > lo else np.zeros((0,) + tuple(images.shape[1:]), np.uint8)
    if len(chunk) < local:  # pad with copies of an existing image (discarded below)
      filler = chunk[-1:] if len(chunk) else np.asarray(images[s + size - 1:s + size])
      chunk = np.concatenate([chunk, np.repeat(filler, local - len(chunk), 0)])
    feats = feature_fn(params, sharding.shard_batch(chunk, mesh))
    if procs > 1:
      from jax.experimental import multihost_utils
      feats = multihost_utils.process_allgather(feats, tiled=True)
    for k in keys:
      out[k].append(np.asarray(feats[k])[:size])
  return {k: np.concatenate(v) for k, v in out.items()}


def collapse_metrics(feature_fn, params, images, hier, erank_samples, batch_size, prefix):
  """Std, mean norm and effective rank per level (token rows) and of the pooled features.

  Returns (metrics, samples): samples maps "pooled" -> image features [n, D] and "level_<l>" ->
  the token rows [<= erank_samples, D] the level's statistics were computed on.
  """
  keys = ("pooled",) + tuple(f"level_{l}" for l in range(hier.num_levels))
  feats = extract(feature_fn, params, images, batch_size, keys)
  out = evaluation.collapse_stats(feats["pooled"], f"{prefix}/pooled")
  samples = {"pooled": feats["pooled"]}
  rng = np.random.default_rng(0)
  for l in range(hier.num_levels):
    rows = feats[f"level_{l}"].reshape(-1, feats[f"level_{l}"].shape[-1])
    if len(rows) > erank_samples:
      rows = rows[rng.choice(len(rows), erank_samples, replace=False)]
    out.update(evaluation.collapse_stats(rows, f"{prefix}/level_{l}"))
    samples[f"level_{l}"] = rows
  return out, samples


def probe_all(config, ds, feature_fn, encoders: dict, train_idx, test_idx, with_pixels: bool = True) -> dict:
  """Linear probe and k-NN for each named encoder params, and for raw pixels.

  with_pixels=False: only the linear-probe accuracy per encoder name (the periodic probe).
  """
  e, results = config.eval, {}
  key = PROBE_FEATURES[e.probe_features]
  xtr, ytr = ds.train_images[train_idx], ds.train_labels[train_idx]
  xte, yte = ds.test_images[test_idx], ds.test_labels[test_idx]
  probe = lambda ftr, fte: evaluation.linear_probe_accuracy(
      ftr, ytr, fte, yte, l2=e.probe_l2, iterations=e.probe_iterations, num_classes=ds.num_classes)
  if not with_pixels:
    return {name: probe(extract(feature_fn, p, xtr, e.batch_size, (key,))[key],
                        extract(feature_fn, p, xte, e.batch_size, (key,))[key]) for name, p in encoders.items()}
  feats, correct = {}, {}
  predict = lambda ftr, fte: evaluation.linear_probe_predictions(
      ftr, ytr, fte, yte, l2=e.probe_l2, iterations=e.probe_iterations, num_classes=ds.num_classes)
  for name, p in encoders.items():  # both feature kinds in one pass; the other kind gets a linear probe too
    ftr = extract(feature_fn, p, xtr, e.batch_size, tuple(PROBE_FEATURES.values()))
    fte = extract(feature_fn, p, xte, e.batch_size, tuple(PROBE_FEATURES.values()))
    feats[name] = (ftr[key], fte[key])
    for kind, other in PROBE_FEATURES.items():
      if other != key:
        prefix = "" if name == "trained" else f"{name}_"
        correct[(name, kind)] = predict(ftr[other], fte[other]) == yte
        results[f"{prefix}linear_probe_accuracy_{kind}"] = float(correct[(name, kind)].mean())
  size = config.data.image_size
  to_pixels = lambda x: np.asarray(data_lib.resize(data_lib.normalize(jnp.asarray(np.asarray(x)), ds.mean, ds.std),
                                                   size)).reshape(len(x), -1)
  feats["pixel"] = (to_pixels(xtr), to_pixels(xte))
  for name, (ftr, fte) in feats.items():
    prefix = "" if name == "trained" else f"{name}_"
    correct[(name, e.probe_features)] = predict(ftr, fte) == yte
    results[f"{prefix}linear_probe_accuracy"] = float(correct[(name, e.probe_features)].mean())
    results[f"{prefix}knn_accuracy"] = evaluation.knn_accuracy(
        ftr, ytr, fte, yte, k=e.knn_k, temperature=e.knn_temperature, num_classes=ds.num_classes)
  if "trained" in encoders:  # is the trained encoder's probe above the pixel probe, on the same test images?
    results["vs_pixels"] = {kind: evaluation.paired_comparison(correct[("trained", kind)],
                                                               correct[("pixel", e.probe_features)])
                            for kind in PROBE_FEATURES}
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
               budget.num_blocks, len(ds.pretrain))
  mesh = sharding.make_mesh()
  sharding.check_batch_divisible(config.train.batch_size, mesh, "train.batch_size")
  sched = step_lib.make_schedules(config)
  tx = step_lib.make_optimizer(config, sched)
  # One compiled program (op by op, the model and optimizer init compile ~200 small programs).
  init_fn = jax.jit(
      lambda: step_lib.init_state(config, vit, hier, tx, jax.random.PRNGKey(config.seed)))
  t = config.train
  ckpt = checkpoint_lib.Checkpointer(os.path.join(workdir, "checkpoints"), save_every=t.save_every,
                                     keep_latest=1, keep_best=t.keep_best, best_metric=t.best_metric,
                                     best_mode=t.best_mode)
  state, _, start = loop.restore_or_init(ckpt, init_fn, mesh=mesh)
  writer = metrics_lib.MetricWriter(workdir, config=config, resume_step=start, tensorboard=t.tensorboard)
  results_dir = os.path.join(workdir, "results")
  os.makedirs(results_dir, exist_ok=True)
  feature_fn = step_lib.make_feature_fn(vit, hier, ds.mean, ds.std)
  train_step = loop.jit_train_step(step_lib.make_train_step(config, vit, hier, sched, ds.mean, ds.std,
                                                           augment=not ds.host_augment), mesh)
  pretrain, n_train = ds.pretrain, len(ds.pretrain)
  procs, proc = jax.process_count(), jax.process_index()

  def batch_fn(s):
    """This host's rows of the global batch of step s (a pure function of s: exact resume)."""
    idx = data_lib.batch_indices(s, t.batch_size, n_train, config.seed)
    if ds.host_augment:  # decode + augment only this host's rows, while the previous step runs
      d = config.data
      return {"images": pretrain.train_batch(idx, s, config.seed, tuple(d.crop_scale), tuple(d.crop_ratio),
                                             d.hflip, proc, procs)}
    local = len(idx) // procs
    return {"images": pretrain[idx[proc * local:(proc + 1) * local]]}

  sample_masks = jax.jit(lambda k, n: masking.sample_masks(k, vit.grid, n, config.mask), static_argnums=1)

  def log_masks(step):
    """A draw of the mask sampler on the first images of batch `step`: results/masks.png and TensorBoard."""
    imgs = np.asarray(batch_fn(step)["images"][:8])
    masks = sample_masks(jax.random.fold_in(jax.random.PRNGKey(config.seed), step), len(imgs))
    sized = np.asarray(data_lib.resize(jnp.asarray(imgs, jnp.float32), vit.image_size))
    png = visualize.save_mask_grid(os.path.join(results_dir, "masks.png"), sized, vit.patch_size, masks)
    writer.write_image(step, "masks", visualize.read_png(png))

  e = config.eval
  if start == 0:
    log_masks(0)
  monitor = monitor_lib.CollapseMonitor.from_history(
      writer.history(), ["pooled"] + [f"level_{l}" for l in range(hier.num_levels)],
      erank_drop=e.erank_drop, std_drop=e.std_drop, erank_floor=e.erank_floor)
  train_idx = evaluation.subset_indices(len(ds.train_images), e.train_samples, PROBE_SUBSET_SEED)
  test_idx = evaluation.subset_indices(len(ds.test_images), e.test_samples, PROBE_SUBSET_SEED)
  bank_idx = evaluation.subset_indices(len(ds.train_images), e.during_train_samples, 1)
  query_idx = evaluation.subset_indices(len(ds.test_images), e.during_train_samples, 2)

  def eval_fn(state, step):
    params = state.target.params
    bank = extract(feature_fn, params, ds.train_images[bank_idx], e.batch_size)["pooled"]
    out, samples = collapse_metrics(feature_fn, params, ds.test_images[query_idx], hier, e.erank_samples,
                                    e.batch_size, "eval")
    query = samples["pooled"]
    out["eval/knn_accuracy"] = evaluation.knn_accuracy(
        bank, ds.train_labels[bank_idx], query, ds.test_labels[query_idx], k=e.knn_k,
        temperature=e.knn_temperature, num_classes=ds.num_classes)
    if e.probe_during_train:  # the final protocol's probe (same subsets), along the way
      out["eval/linear_probe_accuracy"] = probe_all(config, ds, feature_fn, {"trained": params},
                                                    train_idx, test_idx, with_pixels=False)["trained"]
    extra, _ = monitor.update(out, step, dims=samples)
    out.update(extra)
    writer.write_histograms(step, {f"features/{k}": v for k, v in samples.items()})
    log_masks(step)
    return out

  plot_fn = lambda step: plots.dashboard(writer.history(), os.path.join(results_dir, "dashboard.png"),
                                         title=f"jepa ({hier.kind}, {hier.num_levels} levels)")
  t0 = time.perf_counter()
  state, status = loop.run(state, train_step, batch_fn, start_step=start, num_steps=t.num_steps,
                           writer=writer, checkpointer=ckpt, log_every=t.log_every,
                           eval_every=t.eval_every or t.num_steps, eval_fn=eval_fn,
                           plot_every=t.plot_every, plot_fn=plot_fn, plot_at_end=False, mesh=mesh,
                           progress_desc="jepa",
                           key_metrics=("train/loss", "eval/knn_accuracy"))
  train_seconds = time.perf_counter() - t0
  if status != "done":
    writer.close()
    ckpt.close()
    return None

  # Final evaluation of frozen features: trained target encoder vs the same random init vs pixels.
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
                 hierarchy=hier.kind, hierarchy_weights=list(hier.weights), dataset=config.data.name,
                 hierarchy_layers=list(hier.layers), probe_features=e.probe_features)
  flat = {f"final/{k}": v for k, v in results.items() if isinstance(v, float)}
  flat.update({f"final/effective_rank/{k}": v for k, v in results["effective_rank"].items()})
  writer.write_scalars(t.num_steps, flat)
  with open(os.path.join(results_dir, "final_results.json"), "w") as f:
    json.dump(results, f, indent=2, sort_keys=True)
  writer.export_history(results_dir)
  plot_fn(t.num_steps)  # the one end-of-run dashboard (the loop was told not to draw it), with final/*
  logging.info("jepa final: %s", json.dumps({k: v for k, v in results.items() if isinstance(v, float)}))
  logging.info("jepa final, trained probe minus pixel probe (same test images): %s", json.dumps(results["vs_pixels"]))
  writer.close()
  ckpt.close()
  return results
