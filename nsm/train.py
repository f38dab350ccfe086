"""NSM training and evaluation on the common runtime: train_and_evaluate(config, workdir)."""
from __future__ import annotations

import functools
import json
import os
from typing import Any

import jax
import jax.numpy as jnp
import jraph
import ml_collections
import numpy as np
import optax
from absl import logging

from common import checkpoint as checkpoint_lib
from common import config_validation as cv
from common import diagnostics
from common import loop
from common import metrics as metrics_lib
from common import plots
from common import schedules
from common import train_state
from nsm import baselines
from nsm import data as data_lib
from nsm import domains
from nsm import evaluate
from nsm import model as model_lib


class NSMState(train_state.TrainState):
  """TrainState plus the parameters with the lowest validation loss seen so far."""
  best_params: Any
  best_val_loss: jax.Array


def validate_config(config: ml_collections.ConfigDict) -> None:
  cv.check_in(config, "domain", sorted(domains.DOMAINS))
  cv.check_in(config, "data.mode", data_lib.MODES)
  cv.check_int(config, "seed", min_value=0)
  cv.check_int(config, "data.num_graphs", min_value=20)
  cv.check_int(config, "data.feature_dim", min_value=1)
  cv.check_in(config, "model.kind", model_lib.KINDS)
  cv.check_in(config, "model.aggregation", model_lib.AGGREGATIONS)
  cv.check_in(config, "model.rgcn_impl", model_lib.RGCN_IMPLS)
  cv.check_in(config, "model.readout", model_lib.READOUTS)
  cv.check_in(config, "model.readout_levels", model_lib.READOUT_LEVELS)
  cv.check_in(config, "model.upper_relations", model_lib.UPPER_RELATIONS)
  cv.check_range(config, "model.pool_ratio", 0.0, 1.0, lo_open=True)
  cv.check_range(config, "model.dropout", 0.0, 1.0, hi_open=True)
  for f in ("model.hidden", "model.num_bases", "model.rgcn_layers", "model.coupling_layers",
            "model.coupling_hidden", "train.batch_size", "train.epochs", "train.log_every",
            "train.eval_every_epochs", "train.plot_every_evals", "train.save_every_epochs"):
    cv.check_int(config, f, min_value=1)
  cv.check_int(config, "model.num_classes", min_value=2)
  cv.check(config.model.hidden >= 3, "model.hidden", config.model.hidden, "an integer >= 3")
  cv.check_nonneg(config, "loss.cycle_weight", "optim.weight_decay")
  cv.check_positive(config, "optim.learning_rate", "optim.grad_clip")
  cv.check_range(config, "optim.warmup_fraction", 0.0, 1.0, hi_open=True)
  cv.check(config.train.save_every_epochs % config.train.eval_every_epochs == 0,
           "train.save_every_epochs", config.train.save_every_epochs,
           f"a multiple of train.eval_every_epochs={config.train.eval_every_epochs}")
  cv.check(len(config.loss.cycle_level_weights) == 2, "loss.cycle_level_weights",
           config.loss.cycle_level_weights, "two weights (L1, L2)")
  cv.check_int(config, "train.flat_epochs", min_value=-1)
  cv.check_int(config, "train.flat_depth", min_value=0)
  cv.check(len(config.model.clusters) == 2 and all(int(k) >= 1 for k in config.model.clusters),
           "model.clusters", config.model.clusters, "two integers >= 1 (L2, L3 nodes per graph)")
  cv.check_int(config, "data.hops", min_value=0)
  cv.check_int(config, "data.test_hops", min_value=1)


def model_config(config, num_relations: int) -> model_lib.NSMConfig:
  m = config.model
  return model_lib.NSMConfig(
      num_relations=num_relations, kind=m.kind, hidden=m.hidden, num_bases=m.num_bases,
      aggregation=m.aggregation, rgcn_impl=m.rgcn_impl, rgcn_layers=m.rgcn_layers, clusters=tuple(m.clusters),
      coupling_layers=m.coupling_layers, coupling_hidden=m.coupling_hidden,
      pool_ratio=m.pool_ratio, upper_relations=m.upper_relations, readout=m.readout,
      readout_levels=m.readout_levels, size_features=m.size_features, dropout=m.dropout,
      num_classes=m.num_classes, cycle_level_weights=tuple(config.loss.cycle_level_weights))


def nsm_depth(cfg: model_lib.NSMConfig) -> int:
  """Message-passing layers on the path to NSM's head (levels x R-GCN layers per level)."""
  return (3 if cfg.kind == "hier" else 2) * cfg.rgcn_layers


def flat_config(config, num_relations: int, depth: int, hidden: int) -> model_lib.FlatConfig:
  m = config.model
  return model_lib.FlatConfig(
      num_relations=num_relations, depth=depth, hidden=hidden, num_bases=m.num_bases,
      aggregation=m.aggregation, rgcn_impl=m.rgcn_impl, readout=m.readout, size_features=m.size_features,
      dropout=m.dropout, num_classes=m.num_classes)


def matched_flat_config(config, num_relations: int, depth: int, g) -> model_lib.FlatConfig:
  """Flat R-GCN of `depth` layers whose width matches NSM's parameter count on graph batch g."""
  nsm = model_lib.build_model(model_config(config, num_relations))
  target = model_lib.param_count(nsm, g)
  flat = flat_config(config, num_relations, depth, config.model.hidden)
  return flat_config(config, num_relations, depth, model_lib.matched_flat_width(flat, target, g))


def losses(model, params, g, *, train: bool, rng, cycle_weight: float):
  """Task CE over real graphs + cycle_weight * cycle loss. Returns (total, metrics, logits)."""
  logits, aux = model.apply(params, g, train=train, rngs={"dropout": rng} if train else {})
  aux = {k: v for k, v in aux.items() if k.startswith("cycle")}
  gmask = jraph.get_graph_padding_mask(g).astype(logits.dtype)
  labels = g.globals["label"]
  ce = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
  n = jnp.maximum(gmask.sum(), 1.0)
  task = (ce * gmask).sum() / n
  cycle = aux.get("cycle", jnp.zeros(()))
  total = task + cycle_weight * cycle
  correct = ((logits.argmax(-1) == labels) * gmask).sum()
  metrics = {"loss": total, "task_loss": task, "cycle_loss": cycle, "accuracy": correct / n,
             "num_graphs": gmask.sum()}
  metrics.update({k: v for k, v in aux.items() if k.startswith("cycle_")})
  return total, (metrics, logits)


def make_train_step(model, cycle_weight: float, schedule):
  def train_step(state, g):
    rng = train_state.step_rng(state)
    grad_fn = jax.value_and_grad(functools.partial(losses, model, train=True, rng=rng,
                                                   cycle_weight=cycle_weight), has_aux=True)
    (_, (metrics, _)), grads = grad_fn(state.params, g)
    metrics = {f"train/{k}": v for k, v in metrics.items() if k != "num_graphs"}
    metrics["train/learning_rate"] = schedule(state.step)
    metrics["train/grad_norm"] = optax.tree.norm(grads)
    return state.apply_gradients(grads=grads), metrics
  return train_step


def make_evaluator(model, cycle_weight: float):
  """Returns evaluate(params, batches) -> (graph-weighted mean metrics, y_true, y_pred)."""
  @jax.jit
  def eval_step(params, g):
    _, (metrics, logits) = losses(model, params, g, train=False, rng=None,
                                  cycle_weight=cycle_weight)
    return metrics, logits.argmax(-1), jraph.get_graph_padding_mask(g)

  def run(params, batches):
    sums, total, ys, ps = {}, 0.0, [], []
    for b in batches:
      m, pred, mask = jax.device_get(eval_step(params, b))
      w = float(m.pop("num_graphs"))
      total += w
      for k, v in m.items():
        sums[k] = sums.get(k, 0.0) + float(v) * w
      ys.append(np.asarray(b.globals["label"])[mask])
      ps.append(np.asarray(pred)[mask])
    return {k: v / total for k, v in sums.items()}, np.concatenate(ys), np.concatenate(ps)
  return run


def make_optimizer(config, num_steps: int):
  o = config.optim
  schedule = schedules.warmup_cosine(o.learning_rate, num_steps,
                                     int(o.warmup_fraction * num_steps))
  tx = optax.chain(optax.clip_by_global_norm(o.grad_clip),
                   optax.adamw(schedule, weight_decay=o.weight_decay))
  return tx, schedule


def fit_flat_baseline(config, batches: data_lib.Batches, num_relations: int, num_steps: int,
                      eval_every: int) -> dict:
  """Parameter-matched flat R-GCN (same training, no cycle loss), best by val loss; test metrics."""
  g0 = jax.tree.map(jnp.asarray, batches.train_batch(0))
  depth = config.train.flat_depth or nsm_depth(model_config(config, num_relations))
  flat_cfg = matched_flat_config(config, num_relations, depth, g0)
  model = model_lib.build_model(flat_cfg)
  tx, schedule = make_optimizer(config, num_steps)
  params = jax.jit(model.init)(jax.random.PRNGKey(config.seed + 1), g0)  # one program, not op by op
  state = train_state.TrainState.create(apply_fn=model.apply, params=params, tx=tx,
                                        rng=jax.random.PRNGKey(config.seed + 2))
  step_fn = jax.jit(make_train_step(model, 0.0, schedule), donate_argnums=0)
  evaluator = make_evaluator(model, 0.0)
  best = (np.inf, state.params)
  for step in range(num_steps):
    state, _ = step_fn(state, batches.train_batch(step))
    if (step + 1) % eval_every == 0 or step + 1 == num_steps:
      val, _, _ = evaluator(state.params, batches.eval_batches("val"))
      if val["loss"] < best[0]:
        best = (val["loss"], jax.device_get(state.params))
  _, y, p = evaluator(best[1], batches.eval_batches("test"))
  out = evaluate.classification_metrics(y, p, config.model.num_classes)
  out["num_params"] = model_lib.count_params(best[1])
  out.update(depth=flat_cfg.depth, width=flat_cfg.hidden)
  return out


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Trains NSM on config.domain, evaluates on the test split, writes final_results.json."""
  validate_config(config)
  c = config
  dataset = data_lib.build_dataset(c.domain, c.data.mode, c.data.num_graphs, c.seed,
                                   feature_dim=c.data.feature_dim,
                                   inverse_edges=c.data.inverse_edges, hops=c.data.hops)
  splits = data_lib.split_indices(len(dataset.graphs), c.data.split, c.seed)
  hop_sets = {}
  if c.domain == "chains":  # length generalisation: fresh test sets at k = 1..test_hops
    hop_sets = data_lib.build_chain_test_sets(len(splits["test"]), c.seed, c.data.test_hops,
                                              feature_dim=c.data.feature_dim,
                                              inverse_edges=c.data.inverse_edges)
  batches = data_lib.Batches(dataset, splits, c.train.batch_size, c.seed,
                             extra_graphs=tuple(g for d in hop_sets.values() for g in d.graphs))
  spe = batches.steps_per_epoch
  num_steps = c.train.epochs * spe
  eval_every = c.train.eval_every_epochs * spe
  logging.info("nsm %s/%s: %d graphs, %d relations, budget %s, %d steps", c.domain, c.data.mode,
               len(dataset.graphs), dataset.num_relations, batches.budget, num_steps)

  model = model_lib.build_model(model_config(c, dataset.num_relations))
  tx, schedule = make_optimizer(c, num_steps)
  g0 = jax.tree.map(jnp.asarray, batches.train_batch(0))

  @jax.jit  # one program (op by op: a compile per parameter shape and operation)
  def init_fn():
    params = model.init(jax.random.PRNGKey(c.seed), g0)
    return NSMState.create(apply_fn=model.apply, params=params, tx=tx,
                           rng=jax.random.PRNGKey(c.seed + 1000),
                           best_params=jax.tree.map(jnp.copy, params),
                           best_val_loss=jnp.array(jnp.inf, jnp.float32))

  ckpt = checkpoint_lib.Checkpointer(os.path.join(workdir, "checkpoints"),
                                     save_every=c.train.save_every_epochs * spe, keep_latest=1,
                                     keep_best=1, best_metric="val/loss", best_mode="min")
  state, _, start_step = loop.restore_or_init(ckpt, init_fn)
  num_params = model_lib.count_params(state.params)
  writer = metrics_lib.MetricWriter(workdir, config=c, resume_step=start_step)
  results_dir = os.path.join(workdir, "results")
  evaluator = make_evaluator(model, c.loss.cycle_weight)
  cached_eval: dict = {}

  def eval_hook(step, state):
    if step % eval_every and step != num_steps:
      return None
    val, _, _ = evaluator(state.params, batches.eval_batches("val"))
    cached_eval[step] = {f"val/{k}": v for k, v in val.items()}
    mem = diagnostics.device_memory_stats()
    if mem.get("bytes_in_use"):
      cached_eval[step]["memory/bytes_in_use_gb"] = mem["bytes_in_use"] / 2**30
    if val["loss"] < float(state.best_val_loss):
      state = state.replace(best_params=jax.tree.map(jnp.copy, state.params),
                            best_val_loss=jnp.asarray(val["loss"], jnp.float32))
    return state

  groups = {"total loss": ["train/loss", "val/loss"], "task loss": ["train/task_loss", "val/task_loss"],
            "cycle loss (normalised)": ["train/cycle_loss", "val/cycle_loss", "val/cycle_l1",
                                        "val/cycle_l2"],
            "accuracy": ["train/accuracy", "val/accuracy"], "learning rate": ["train/learning_rate"],
            "device memory (GiB)": ["memory/bytes_in_use_gb"]}
  plot_fn = lambda step: plots.dashboard(  # noqa: E731
      writer.history(), os.path.join(results_dir, "dashboard.png"), groups=groups,
      title=f"NSM {c.domain} ({c.data.mode})")
  train_step = loop.jit_train_step(make_train_step(model, c.loss.cycle_weight, schedule))
  state, status = loop.run(
      state, train_step, batches.train_batch, start_step=start_step, num_steps=num_steps,
      writer=writer, checkpointer=ckpt, log_every=c.train.log_every, eval_every=eval_every,
      eval_fn=lambda state, step: cached_eval.pop(step),
      plot_every=eval_every * c.train.plot_every_evals, plot_fn=plot_fn,
      hooks=(eval_hook,), progress_desc=f"nsm {c.domain}",
      key_metrics=("train/loss", "train/accuracy", "val/loss", "val/accuracy"))
  writer.export_history(results_dir)
  if status != "done":
    writer.close()
    ckpt.close()
    return {"status": status}

  test, y, p = evaluator(state.best_params, batches.eval_batches("test"))
  results = evaluate.classification_metrics(y, p, c.model.num_classes)
  results.update({
      "domain": c.domain, "mode": c.data.mode, "seed": c.seed, "cycle_weight": c.loss.cycle_weight,
      "num_params": num_params, "num_relations": dataset.num_relations, "num_steps": num_steps,
      "best_val_loss": float(state.best_val_loss),
      "test_task_loss": test["task_loss"],
      "test_cycle": {k: v for k, v in test.items() if k.startswith("cycle")},
      "budget": vars(batches.budget)})
  if hop_sets:
    results["accuracy_by_hops"] = {
        k: float(evaluator(state.best_params, batches.graphs_batches(d.graphs))[0]["accuracy"])
        for k, d in hop_sets.items()}
  if c.train.baselines:
    # Cached in the workdir: a rerun (resume after completion) does not refit them.
    cache = os.path.join(results_dir, "baselines.json")
    if os.path.exists(cache):
      with open(cache) as f:
        cached = json.load(f)
    else:
      stats = data_lib.graph_stats(dataset, np.arange(len(dataset.graphs)))
      base = baselines.trivial_baselines(stats, splits, num_classes=c.model.num_classes, seed=c.seed)
      cached = {"baselines": base}
      if c.train.flat_epochs != 0:  # 0 = skip the (expensive) flat R-GCN baseline
        flat_steps = (c.train.flat_epochs if c.train.flat_epochs > 0 else c.train.epochs) * spe
        flat = fit_flat_baseline(c, batches, dataset.num_relations, flat_steps, eval_every)
        base["flat_rgcn"] = flat["test_accuracy"]
        cached["flat_rgcn"] = flat
      evaluate.write_json(cached, cache)
    results.update(cached)
  evaluate.plot_confusion(results["confusion_matrix"], os.path.join(results_dir, "confusion_matrix.png"),
                          f"NSM {c.domain} ({c.data.mode}) test acc {results['test_accuracy']:.3f}")
  evaluate.write_json({"confusion_matrix": results["confusion_matrix"],
                       "classification_report": results["classification_report"]},
                      os.path.join(results_dir, "confusion_matrix.json"))
  evaluate.write_json(results, os.path.join(results_dir, "final_results.json"))
  evaluate.write_json(results, os.path.join(workdir, "final_results.json"))
  logging.info("nsm %s/%s test accuracy %.4f (balanced %.4f) baselines %s", c.domain, c.data.mode,
               results["test_accuracy"], results["balanced_accuracy"], results.get("baselines"))
  writer.close()
  ckpt.close()
  return results
