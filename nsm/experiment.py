"""python -m nsm.experiment: NSM vs parameter-matched flat R-GCNs vs trivial baselines, all tasks.

Per task (causal, kg, planning at their default difficulty; chains trained on k <= 3 and tested
on k = 1..10), per model, every seed is trained at once: one `jax.vmap` over seeds of the jitted
train step (seed s has its own dataset, split, init, dropout and batch order), so each model
compiles once. Models: NSM (model.kind=hier, top-level head), flat R-GCN at NSM's depth and at
the task's reasoning depth (both width-matched to NSM's parameter count), the trivial baselines
(majority, size-only logistic regression, bag-of-edge-types MLP). Selection: per seed the
parameters with the lowest validation loss (val every --eval_every steps); the validation
accuracy curve is recorded to show the plateau. Also a cycle-weight sweep on --sweep_tasks.

  python -m nsm.experiment --out nsm/figures/experiment.json
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time

import jax
import jax.numpy as jnp
import jraph
import numpy as np
import optax
from scipy import stats as sp_stats

from configs import nsm as nsm_config
from nsm import baselines
from nsm import data as data_lib
from nsm import domains
from nsm import graphs as graphs_lib
from nsm import model as model_lib
from nsm import train as train_lib

TASKS = ("causal", "kg", "planning", "chains")
MODEL_NAMES = ("nsm", "flat_equal_depth", "flat_depth_k")



def _fmt3(xs) -> str:
  """Per-seed values with 3 decimals (float32's repr would print 0.6919999718666077)."""
  return "[" + ", ".join(f"{float(x):.3f}" for x in np.ravel(np.asarray(xs))) + "]"

def task_depth(task: str, hops: int) -> int:
  """Flat R-GCN "depth = k": the message-passing hops the label needs at depth knob `hops`.

  causal: patient -> treatment -> effect x hops -> symptom <- patient (hops + 3); kg: query head
  -> city -> region x (hops - 1) -> country (-> query tail) (hops + 2); planning: step -> action ->
  prerequisite -> step (4); chains: the longest *test* path (k = 10).
  """
  return {"causal": hops + 3, "kg": hops + 2, "planning": 4, "chains": 10}[task]


def effective_hops(task: str, hops: int) -> int:
  return hops or domains.DEFAULT_HOPS[task]


def experiment_config(args):
  c = nsm_config.get_config("default")
  c.model.hidden = args.hidden
  c.model.rgcn_layers = args.rgcn_layers
  c.train.batch_size = args.batch_size
  c.optim.learning_rate = args.lr
  c.data.num_graphs = args.num_graphs
  return c


def ci95(values):
  v = np.asarray(values, np.float64)
  if len(v) < 2:
    return float(v.mean()), 0.0
  return float(v.mean()), float(sp_stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v)))


def stack(trees):
  return jax.tree.map(lambda *x: np.stack(x), *trees)


@dataclasses.dataclass
class TaskData:
  batches: list  # per seed data_lib.Batches (one shared budget)
  hop_sets: list  # per seed {k: Dataset} (chains only)
  num_relations: int
  trivial: list  # per seed trivial baseline accuracies


def build_task(task, c, seeds, test_per_k, hops=0) -> TaskData:
  dsets, splits, hop_sets = [], [], []
  for s in seeds:
    ds = data_lib.build_dataset(task, "v2", c.data.num_graphs, s, feature_dim=c.data.feature_dim,
                                hops=hops)
    dsets.append(ds)
    splits.append(data_lib.split_indices(len(ds.graphs), c.data.split, s))
    hop_sets.append(data_lib.build_chain_test_sets(test_per_k, s, 10) if task == "chains" else {})
  extra = tuple(g for ds, hs in zip(dsets, hop_sets)
                for g in list(ds.graphs) + [x for d in hs.values() for x in d.graphs])
  # One budget for every seed (the vmapped step stacks their batches): the worst case over the
  # union of all seeds' graphs. Passing `extra` to each seed's Batches also counted that seed's own
  # graphs twice in its top-batch_size sum, so the budgets differed between seeds and np.stack
  # failed (since the exact worst-case budget of session 9).
  budget = graphs_lib.padding_budget(extra, c.train.batch_size)
  batches = [data_lib.Batches(ds, sp, c.train.batch_size, s) for ds, sp, s in zip(dsets, splits, seeds)]
  for b in batches:
    b.budget = budget
  trivial = []
  for ds, sp, s in zip(dsets, splits, seeds):
    st = data_lib.graph_stats(ds, np.arange(len(ds.graphs)))
    trivial.append(baselines.trivial_baselines(st, sp, num_classes=2, seed=s))
  return TaskData(batches, hop_sets, dsets[0].num_relations, trivial)


def train_seeds(model, c, td: TaskData, seeds, steps, eval_every, cycle_weight):
  """Trains len(seeds) copies (vmapped). Returns per-seed test/by-k accuracy, curves, params."""
  tx, _ = train_lib.make_optimizer(c, steps)
  g0 = jax.tree.map(jnp.asarray, td.batches[0].train_batch(0))
  keys = jnp.stack([jax.random.PRNGKey(s) for s in seeds])
  params = jax.vmap(lambda k: model.init(k, g0))(keys)
  opt = jax.vmap(tx.init)(params)
  n_params = model_lib.count_params(jax.tree.map(lambda x: x[0], params))

  def loss_fn(p, g, rng, train):
    return train_lib.losses(model, p, g, train=train, rng=rng, cycle_weight=cycle_weight)

  def step(p, o, g, rng):
    (_, (m, _)), grads = jax.value_and_grad(loss_fn, has_aux=True)(p, g, rng, True)
    upd, o = tx.update(grads, o, p)
    return optax.apply_updates(p, upd), o, m["loss"]

  vstep = jax.jit(jax.vmap(step), donate_argnums=(0, 1))

  @jax.jit
  def veval(p, g):
    def one(p, g):
      _, (m, logits) = loss_fn(p, g, None, False)
      mask = jraph.get_graph_padding_mask(g)
      correct = ((logits.argmax(-1) == g.globals["label"]) & mask).sum()
      return m["task_loss"] * m["num_graphs"], correct, m["num_graphs"], m["cycle_loss"] * m["num_graphs"]
    return jax.vmap(one)(p, g)

  def evaluate(p, per_seed_batches):
    tot = np.zeros((4, len(seeds)))
    for group in zip(*per_seed_batches):
      tot += np.stack([np.asarray(x, np.float64) for x in veval(p, stack(group))])
    return {"loss": tot[0] / tot[2], "accuracy": tot[1] / tot[2], "cycle": tot[3] / tot[2]}

  val_b = [b.eval_batches("val") for b in td.batches]
  best_loss = np.full(len(seeds), np.inf)
  best = jax.tree.map(jnp.copy, params)  # params are donated to the step
  curve = []
  t0, cpu0 = time.time(), time.process_time()
  for i in range(steps):
    g = stack([b.train_batch(i) for b in td.batches])
    rngs = jax.vmap(lambda s: jax.random.fold_in(jax.random.PRNGKey(1000 + s), i))(jnp.asarray(seeds))
    params, opt, loss = vstep(params, opt, g, rngs)
    if (i + 1) % eval_every == 0 or i + 1 == steps:
      v = evaluate(params, val_b)
      curve.append({"step": i + 1, "val_accuracy": v["accuracy"].tolist(),
                    "val_loss": v["loss"].tolist(), "train_loss": np.asarray(loss).tolist()})
      print(f"  step {i + 1}: val accuracy {_fmt3(v['accuracy'])}, train loss {_fmt3(loss)}",
            flush=True)
      better = v["loss"] < best_loss
      best_loss = np.where(better, v["loss"], best_loss)
      sel = jnp.asarray(better)
      best = jax.tree.map(lambda b, p: jnp.where(sel.reshape((-1,) + (1,) * (p.ndim - 1)), p, b),
                          best, params)
  train_s, train_cpu_s = time.time() - t0, time.process_time() - cpu0
  test = evaluate(best, [b.eval_batches("test") for b in td.batches])
  out = {"test_accuracy": test["accuracy"].tolist(), "test_cycle": test["cycle"].tolist(),
         "num_params": n_params, "curve": curve, "train_seconds": train_s,
         "train_cpu_seconds": train_cpu_s}
  if td.hop_sets and td.hop_sets[0]:
    out["accuracy_by_hops"] = {
        k: evaluate(best, [b.graphs_batches(hs[k].graphs) for b, hs in zip(td.batches, td.hop_sets)])
        ["accuracy"].tolist() for k in td.hop_sets[0]}
  return out


_TASK_DATA: dict = {}


def run_task(task, args, c, results, out_path, phase):
  """phase "main": NSM and the flat baselines (all seeds); "sweep": NSM at other cycle weights."""
  seeds = list(range(args.seeds))
  hops = effective_hops(task, args.hops) if task != "planning" else 0
  res = results.setdefault(task, {})
  if task not in _TASK_DATA:
    t = time.time()
    _TASK_DATA[task] = build_task(task, c, seeds, args.test_per_k, hops)
    print(f"[{task}] data + trivial baselines {time.time() - t:.0f}s", flush=True)
  td = _TASK_DATA[task]
  # Per-task setup (a resumed run may cover only some tasks): the settings this task ran with.
  setup = res.setdefault("setup", {})
  if setup and (setup["hops"], setup["steps"], setup["num_graphs"]) != (hops, args.steps, args.num_graphs):
    raise ValueError(f"--tasks {task}: the results in {out_path} ran with hops/steps/num_graphs "
                     f"{setup['hops']}/{setup['steps']}/{setup['num_graphs']}, this run with "
                     f"{hops}/{args.steps}/{args.num_graphs}: delete the task from the JSON to rerun it")
  setup.update({k: v for k, v in vars(args).items() if k not in ("tasks", "out", "models", "hops")})
  setup.update(hops=hops, task_depth=task_depth(task, hops), cycle_weight=c.loss.cycle_weight,
               config_model=c.model.to_dict())
  setup.setdefault("loadavg", []).append(open("/proc/loadavg").read().split()[:3])
  res["trivial"] = td.trivial
  res["budget"] = vars(td.batches[0].budget)
  g0 = jax.tree.map(jnp.asarray, td.batches[0].train_batch(0))
  nsm_cfg = train_lib.model_config(c, td.num_relations)
  models = {}
  if phase == "main":
    models["nsm"] = (model_lib.build_model(nsm_cfg), c.loss.cycle_weight)
    for name, depth in (("flat_equal_depth", train_lib.nsm_depth(nsm_cfg)),
                        ("flat_depth_k", task_depth(task, hops))):
      fc = train_lib.matched_flat_config(c, td.num_relations, depth, g0)
      models[name] = (model_lib.build_model(fc), 0.0)
    models = {k: v for k, v in models.items() if k in args.models.split(",")}
  elif task in args.sweep_tasks.split(","):
    for cw in (float(w) for w in args.cycle_weights.split(",")):
      models[f"nsm_cw{cw}"] = (model_lib.build_model(nsm_cfg), cw)
  for name, (model, cw) in models.items():
    if name in res.get("models", {}):
      continue
    n_seeds = args.seeds if not name.startswith("nsm_cw") else 3
    sub = dataclasses.replace(td, batches=td.batches[:n_seeds], hop_sets=td.hop_sets[:n_seeds])
    if phase == "main" and "loadavg_main" not in setup:
      setup["loadavg_main"] = [open("/proc/loadavg").read().split()[0], None]
    t = time.time()
    r = train_seeds(model, c, sub, seeds[:n_seeds], args.steps, args.eval_every, cw)
    r.update(cycle_weight=cw, seeds=seeds[:n_seeds])
    if isinstance(model, model_lib.FlatRGCN):
      r.update(depth=model.cfg.depth, width=model.cfg.hidden)
    else:
      r.update(depth=train_lib.nsm_depth(nsm_cfg), width=nsm_cfg.hidden)
    res.setdefault("models", {})[name] = r
    m, h = ci95(r["test_accuracy"])
    print(f"[{task}] {name}: {100 * m:.1f} ± {100 * h:.1f} ({r['num_params']} params, depth "
          f"{r['depth']}, width {r['width']}, {time.time() - t:.0f}s, "
          f"{r['train_cpu_seconds']:.0f} CPU-s)", flush=True)
    setup["loadavg"].append(open("/proc/loadavg").read().split()[:3])
    if phase == "main":  # the main run's own (start, end) 1-min load, sweeps excluded
      setup["loadavg_main"][1] = setup["loadavg"][-1][0]
    with open(out_path, "w") as f:
      json.dump(results, f, indent=1)


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--tasks", default="chains,causal,kg,planning")
  p.add_argument("--sweep_tasks", default="chains,causal")
  p.add_argument("--seeds", type=int, default=5)
  p.add_argument("--steps", type=int, default=500)
  p.add_argument("--eval_every", type=int, default=50)
  p.add_argument("--hidden", type=int, default=32)
  p.add_argument("--rgcn_layers", type=int, default=2)
  p.add_argument("--batch_size", type=int, default=32)
  p.add_argument("--lr", type=float, default=3e-3)
  p.add_argument("--num_graphs", type=int, default=1000)
  p.add_argument("--test_per_k", type=int, default=200)
  p.add_argument("--hops", type=int, default=0,
                 help="depth knob of every task but planning (0 = the domain default)")
  p.add_argument("--cycle_weights", default="0.0,0.1,1.0",
                 help="NSM cycle weights of the sweep (the main run's weight is the 0.01 row)")
  p.add_argument("--models", default=",".join(MODEL_NAMES), help="subset of the main models to run")
  p.add_argument("--out", default="nsm/figures/experiment.json")
  args = p.parse_args(argv)
  for t in args.tasks.split(","):
    if t not in TASKS:
      p.error(f"--tasks: {t!r} is invalid: allowed {list(TASKS)}")
  for m in args.models.split(","):
    if m not in MODEL_NAMES:
      p.error(f"--models: {m!r} is invalid: allowed {list(MODEL_NAMES)}")
  try:
    [float(w) for w in args.cycle_weights.split(",")]
  except ValueError:
    p.error(f"--cycle_weights: {args.cycle_weights!r} is invalid: allowed comma-separated floats")
  if args.hops < 0:
    p.error(f"--hops={args.hops} is invalid: allowed >= 0 (0 = domain default)")
  c = experiment_config(args)
  results = {}
  if os.path.exists(args.out):
    with open(args.out) as f:
      results = json.load(f)
  for phase in ("main", "sweep"):
    for task in args.tasks.split(","):
      run_task(task, args, c, results, args.out, phase)
  with open(args.out, "w") as f:
    json.dump(results, f, indent=1)


if __name__ == "__main__":
  main()
