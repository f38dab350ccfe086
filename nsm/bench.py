"""python -m nsm.bench: steady-state train/inference graphs/s at batch 64, JAX vs PyTorch Geometric.

--reference pyg (default): the flat R-GCN (`nsm.model.FlatRGCN`, pyg_mean, --depth layers of width
--hidden) in JAX against PyTorch Geometric's RGCNConv and FastRGCNConv stacks of the same
architecture (`nsm.bench_pyg`), on the same padded v2 batches (PyG gets the real nodes/edges
only); NSM (model.kind=hier) in JAX is timed alongside. Every JAX model runs with both sparse
R-GCN kernels (model.rgcn_impl table and grouped, the default, rows `*_grouped`; the grouped
flat model must reproduce the table kernel's logits). Before timing, the PyG models are loaded
with the JAX parameters and must reproduce the JAX logits (max abs diff reported, must be < 1e-4).
Each thread count runs in its own worker process pinned with `taskset` to that many cores (JAX
and torch both limited by the affinity; torch.set_num_threads(n)). Repetitions are interleaved
(one block of --steps per implementation, in turn, --reps times); medians and min/max of the
per-block step times are reported. Run under `heavy -x` on an idle machine; the load average is
recorded, other processes' CPU time is measured (common.benchmarking), and a result is refused
(exit 2) above --max_load at the start or when others used > 0.25 cores on average.
--reference legacy: the session-2 comparison, legacy_v2 NSM vs `nsm.torch_reference`.

  heavy -x python -m nsm.bench --out nsm/figures/bench_pyg.json
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from common import benchmarking
from configs import nsm as nsm_config
from nsm import data as data_lib
from nsm import train as train_lib
from nsm import model as model_lib


def _median_time(fn, steps, warmup):
  for _ in range(warmup):
    fn()
  times = []
  for _ in range(steps):
    t = time.perf_counter()
    fn()
    times.append(time.perf_counter() - t)
  return statistics.median(times)


def jax_steps(model, cycle_weight: float = 0.01, learning_rate: float = 1e-3):
  """The timed JAX steps (shared by this benchmark and nsm.profile_rgcn).

  Returns (tx, train, infer): train((params, opt_state), g, rng) -> (carry, loss) is task CE +
  cycle_weight * cycle, its gradient and an Adam update, dropout on, jitted with the carry
  donated; infer(params, g) -> predicted classes [G].
  """
  tx = optax.adam(learning_rate)

  def train_step(carry, g, rng):
    params, opt = carry
    (loss, _), grads = jax.value_and_grad(train_lib.losses, argnums=1, has_aux=True)(
        model, params, g, train=True, rng=rng, cycle_weight=cycle_weight)
    updates, opt = tx.update(grads, opt, params)
    return (optax.apply_updates(params, updates), opt), loss

  return (tx, jax.jit(train_step, donate_argnums=0),
          jax.jit(lambda p, g: model.apply(p, g)[0].argmax(-1)))


def bench_jax(config, batches, num_relations, steps, warmup):
  config.model.kind = "legacy_v2"
  model = model_lib.build_model(train_lib.model_config(config, num_relations))
  host = [batches.train_batch(i) for i in range(8)]
  dev = [jax.tree.map(jnp.asarray, b) for b in host]
  params = model.init(jax.random.PRNGKey(0), dev[0])
  tx, train_jit, infer_jit = jax_steps(model)
  opt = tx.init(params)
  rng = jax.random.PRNGKey(1)
  t = time.perf_counter()
  carry, loss = train_jit((params, opt), dev[0], rng)
  jax.block_until_ready(loss)
  compile_train = time.perf_counter() - t
  t = time.perf_counter()
  jax.block_until_ready(infer_jit(carry[0], dev[0]))
  compile_infer = time.perf_counter() - t
  state = {"carry": carry, "i": 0}

  def one_train():
    state["i"] += 1
    state["carry"], loss = train_jit(state["carry"], dev[state["i"] % 8], rng)
    jax.block_until_ready(loss)

  def one_infer():
    state["i"] += 1
    jax.block_until_ready(infer_jit(state["carry"][0], dev[state["i"] % 8]))

  t_train = _median_time(one_train, steps, warmup)
  t_infer = _median_time(one_infer, steps, warmup)
  return {"train_step_s": t_train, "infer_step_s": t_infer, "compile_train_s": compile_train,
          "compile_infer_s": compile_infer, "recompiles_train": train_jit._cache_size() - 1,
          "recompiles_infer": infer_jit._cache_size() - 1,
          "num_params": model_lib.count_params(params)}, host


def bench_torch(config, host_batches, num_relations, steps, warmup, threads):
  import torch
  from nsm import torch_reference
  torch.manual_seed(0)
  if threads:
    torch.set_num_threads(threads)
  m = config.model
  net = torch_reference.TorchNSM(config.data.feature_dim, m.hidden, num_relations, m.num_bases,
                                 m.rgcn_layers, m.coupling_layers, m.coupling_hidden, m.pool_ratio)
  opt = torch.optim.Adam(net.parameters(), lr=1e-3)

  def to_torch(g):
    n_real = int(g.n_node[:-1].sum()) if g.n_node[-1] else int(g.n_node.sum())
    n_graphs = int((g.n_node > 0).sum()) - 1
    e_real = int(g.n_edge[:n_graphs].sum())
    batch = np.repeat(np.arange(n_graphs), g.n_node[:n_graphs])
    t = lambda a, dt=None: torch.as_tensor(np.asarray(a), dtype=dt)  # noqa: E731
    return (t(g.nodes[:n_real]), t(g.senders[:e_real], torch.long), t(g.receivers[:e_real], torch.long),
            t(g.edges["type"][:e_real], torch.long), t(g.edges["conf"][:e_real]), t(batch, torch.long),
            n_graphs, t(g.globals["size"][:n_graphs]), t(g.globals["label"][:n_graphs], torch.long))

  tb = [to_torch(g) for g in host_batches]
  state = {"i": 0}

  def one_train():
    state["i"] += 1
    *inp, y = tb[state["i"] % len(tb)]
    net.train()
    logits, cycle = net(*inp)
    loss = torch.nn.functional.cross_entropy(logits, y) + 0.01 * cycle
    opt.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
    opt.step()

  def one_infer():
    state["i"] += 1
    *inp, _ = tb[state["i"] % len(tb)]
    net.eval()
    with torch.no_grad():
      net(*inp)[0].argmax(-1)

  return {"train_step_s": _median_time(one_train, steps, warmup),
          "infer_step_s": _median_time(one_infer, steps, warmup),
          "num_params": sum(p.numel() for p in net.parameters()), "threads": torch.get_num_threads(),
          "torch_version": torch.__version__}


def _pyg_worker(args) -> dict:
  """Times JAX FlatRGCN / NSM and PyG RGCNConv / FastRGCNConv in this (pinned) process."""
  import torch
  from nsm import bench_pyg
  torch.set_num_threads(args.threads)
  torch.manual_seed(0)
  config = nsm_config.get_config("default")
  config.model.hidden = args.hidden
  ds = data_lib.build_dataset(args.domain, "v2", 2000, 0, hops=args.hops)
  splits = data_lib.split_indices(len(ds.graphs), (0.7, 0.15, 0.15), 0)
  batches = data_lib.Batches(ds, splits, args.batch_size, 0)
  host = [batches.train_batch(i) for i in range(8)]
  dev = [jax.tree.map(jnp.asarray, b) for b in host]
  r = ds.num_relations
  # Rows: the table kernel under the plain names, the grouped kernel (the default) as `*_grouped`.
  flat_cfg = dataclasses.replace(train_lib.flat_config(config, r, args.depth, args.hidden),
                                 rgcn_impl="table")
  impls, info = {}, {}

  def jax_impl(name, model):
    params = model.init(jax.random.PRNGKey(0), dev[0])
    tx, train_jit, infer_jit = jax_steps(model)
    # The train step donates its carry: time a copy, keep `params` for the PyG logit check.
    st = {"carry": (jax.tree.map(jnp.copy, params), tx.init(params)), "i": 0}
    rng = jax.random.PRNGKey(1)
    t = time.perf_counter()
    st["carry"], loss = train_jit(st["carry"], dev[0], rng)
    jax.block_until_ready(loss)
    t1 = time.perf_counter()
    jax.block_until_ready(infer_jit(st["carry"][0], dev[0]))
    info[name] = {"num_params": model_lib.count_params(params), "compile_train_s": t1 - t,
                  "compile_infer_s": time.perf_counter() - t1}
    def train():
      st["i"] += 1
      st["carry"], loss = train_jit(st["carry"], dev[st["i"] % 8], rng)
      jax.block_until_ready(loss)
    def infer():
      st["i"] += 1
      jax.block_until_ready(infer_jit(st["carry"][0], dev[st["i"] % 8]))
    impls[name] = (train, infer)
    return params

  flat_params = jax_impl("jax_flat", model_lib.build_model(flat_cfg))
  grouped_cfg = dataclasses.replace(flat_cfg, rgcn_impl="grouped")
  jax_impl("jax_flat_grouped", model_lib.build_model(grouped_cfg))
  nsm_cfg = dataclasses.replace(train_lib.model_config(config, r), rgcn_impl="table")
  jax_impl("jax_nsm_hier", model_lib.build_model(nsm_cfg))
  jax_impl("jax_nsm_hier_grouped", model_lib.build_model(dataclasses.replace(nsm_cfg, rgcn_impl="grouped")))
  tb = [bench_pyg.to_pyg(g) for g in host]
  ref_logits = np.asarray(model_lib.build_model(flat_cfg).apply(flat_params, dev[0])[0])
  # The grouped kernel computes the same function: same parameters, same logits.
  grouped_logits = np.asarray(model_lib.build_model(grouped_cfg).apply(flat_params, dev[0])[0])
  err = float(np.abs(grouped_logits - ref_logits).max())
  if not err < 1e-4:
    raise SystemExit(f"JAX grouped R-GCN does not reproduce the table kernel's logits (max abs diff {err})")
  info["jax_flat_grouped"]["max_abs_logit_diff_vs_table"] = err
  for conv in bench_pyg.CONVS:
    net = bench_pyg.PygFlatRGCN(conv, config.data.feature_dim, args.hidden, r, config.model.num_bases,
                                args.depth, dropout=config.model.dropout)
    bench_pyg.load_jax_params(net, flat_params)
    net.eval()
    with torch.no_grad():
      out = net(*tb[0][:-1]).numpy()
    err = float(np.abs(out - ref_logits[:out.shape[0]]).max())
    if not err < 1e-4:
      raise SystemExit(f"PyG {conv} does not reproduce the JAX logits (max abs diff {err})")
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    info[f"pyg_{conv}"] = {"num_params": sum(p.numel() for p in net.parameters()),
                           "max_abs_logit_diff_vs_jax": err}
    st = {"i": 0}
    def train(net=net, opt=opt, st=st):
      st["i"] += 1
      *inp, y = tb[st["i"] % 8]
      net.train()
      loss = torch.nn.functional.cross_entropy(net(*inp), y)
      opt.zero_grad()
      loss.backward()
      opt.step()
    def infer(net=net, st=st):
      st["i"] += 1
      *inp, _ = tb[st["i"] % 8]
      net.eval()
      with torch.no_grad():
        net(*inp).argmax(-1)
    impls[f"pyg_{conv}"] = (train, infer)
  times = {name: {"train": [], "infer": []} for name in impls}
  for name, (train, infer) in impls.items():
    for _ in range(args.warmup):
      train()
      infer()
  for _ in range(args.reps):  # interleaved blocks
    for name, (train, infer) in impls.items():
      for kind, fn in (("train", train), ("infer", infer)):
        t = time.perf_counter()
        for _ in range(args.steps):
          fn()
        times[name][kind].append((time.perf_counter() - t) / args.steps)
  rows = {}
  for name, tt in times.items():
    rows[name] = {f"{k}_graphs_per_s": args.batch_size / statistics.median(v) for k, v in tt.items()}
    rows[name].update({f"{k}_graphs_per_s_range": [args.batch_size / max(v), args.batch_size / min(v)]
                       for k, v in tt.items()})
    rows[name].update(info[name])
  return {"threads": args.threads, "torch_threads": torch.get_num_threads(),
          "affinity": sorted(os.sched_getaffinity(0)), "rows": rows,
          "torch_version": torch.__version__}


def _pyg_main(args) -> dict:
  monitor = benchmarking.LoadMonitor()
  load = [float(x) for x in open("/proc/loadavg").read().split()[:3]]
  if load[0] > args.max_load:
    print(f"load average {load[0]} is invalid: allowed <= {args.max_load} (run under heavy -x on an "
          "idle machine); no result written", file=sys.stderr)
    raise SystemExit(2)
  result = {"domain": args.domain, "batch_size": args.batch_size, "hidden": args.hidden,
            "depth": args.depth, "steps_per_block": args.steps, "reps": args.reps,
            "loadavg_before": load, "workers": []}
  for threads in (1, 2):
    cmd = ["taskset", "-c", ",".join(str(i) for i in range(threads)), sys.executable, "-m",
           "nsm.bench", "--worker", "--threads", str(threads)] + [
               f"--{k}={getattr(args, k)}" for k in ("domain", "batch_size", "hidden", "depth",
                                                      "steps", "warmup", "reps")]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    result["workers"].append(json.loads(out.stdout.strip().splitlines()[-1]))
  result["loadavg_after"] = [float(x) for x in open("/proc/loadavg").read().split()[:3]]
  print(f"NSM bench vs PyG: {args.domain} v2, batch {args.batch_size}, hidden {args.hidden}, flat depth "
        f"{args.depth}; load {result['loadavg_before']} -> {result['loadavg_after']}")
  print(f"{'threads':>7s} {'implementation':22s} {'train g/s':>10s} {'infer g/s':>10s} {'params':>8s}")
  for w in result["workers"]:
    for name, r in w["rows"].items():
      print(f"{w['threads']:7d} {name:22s} {r['train_graphs_per_s']:10.0f} {r['infer_graphs_per_s']:10.0f} "
            f"{r['num_params']:8d}")
    for jname in ("jax_flat", "jax_flat_grouped"):
      for conv in ("pyg_RGCNConv", "pyg_FastRGCNConv"):
        j, t = w["rows"][jname], w["rows"][conv]
        print(f"        {jname} / {conv}: train {j['train_graphs_per_s'] / t['train_graphs_per_s']:.2f}x, "
              f"inference {j['infer_graphs_per_s'] / t['infer_graphs_per_s']:.2f}x")
  monitor.sample()
  result.update(monitor.record())
  print(f"other processes used {monitor.foreign_cores:.2f} CPU cores on average during the run")
  benchmarking.refuse_if_loaded(monitor, args.out, args.max_load)
  with open(args.out, "w") as f:
    json.dump(result, f, indent=2)
  return result


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--reference", default="pyg", choices=("pyg", "legacy"))
  p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
  p.add_argument("--threads", type=int, default=1)
  p.add_argument("--hidden", type=int, default=64)
  p.add_argument("--depth", type=int, default=6, help="flat R-GCN layers (NSM's default depth)")
  p.add_argument("--reps", type=int, default=5)
  p.add_argument("--max_load", type=float, default=1.5)
  p.add_argument("--domain", default="causal")
  p.add_argument("--hops", type=int, default=3,
                 help="depth knob of the graphs: 3 = causal v2 as benchmarked in nsm/README.md (the "
                      "default was 3 until session 10); 0 = the domain default (planning: 0)")
  p.add_argument("--batch_size", type=int, default=64)
  p.add_argument("--steps", type=int, default=20, help="steps per timed block (legacy: per run)")
  p.add_argument("--warmup", type=int, default=10)
  p.add_argument("--torch_threads", type=int, default=0, help="0 = torch default")
  p.add_argument("--out", default="nsm_bench.json")
  args = p.parse_args(argv)
  if args.worker:
    print(json.dumps(_pyg_worker(args)))
    return None
  if args.reference == "pyg":
    return _pyg_main(args)
  config = nsm_config.get_config("default")
  config.model.aggregation = "nsm_mean"  # the original layer semantics, as the torch reference
  ds = data_lib.build_dataset(args.domain, "v2", 2000, 0, hops=args.hops)
  splits = data_lib.split_indices(len(ds.graphs), (0.7, 0.15, 0.15), 0)
  batches = data_lib.Batches(ds, splits, args.batch_size, 0)
  jx, host = bench_jax(config, batches, ds.num_relations, args.steps, args.warmup)
  th = bench_torch(config, host, ds.num_relations, args.steps, args.warmup, args.torch_threads)
  bs = args.batch_size
  rows = []
  for name, key in (("train step", "train_step_s"), ("inference", "infer_step_s")):
    g_jax, g_torch = bs / jx[key], bs / th[key]
    rows.append({"what": name, "jax_graphs_per_s": g_jax, "torch_graphs_per_s": g_torch,
                 "ratio": g_jax / g_torch})
  result = {"domain": args.domain, "mode": "v2", "batch_size": bs, "steps": args.steps,
            "warmup": args.warmup, "device": str(jax.devices()[0]), "budget": vars(batches.budget),
            "jax": jx, "torch": th, "rows": rows}
  print(f"NSM bench: {args.domain} v2, batch {bs}, median of {args.steps} steps after {args.warmup} "
        f"warm-up, {jax.devices()[0].platform}")
  print(f"{'':12s} {'JAX graphs/s':>14s} {'torch graphs/s':>15s} {'ratio':>7s}")
  for r in rows:
    print(f"{r['what']:12s} {r['jax_graphs_per_s']:14.1f} {r['torch_graphs_per_s']:15.1f} "
          f"{r['ratio']:6.2f}x")
  print(f"JAX compile: train {jx['compile_train_s']:.1f}s, inference {jx['compile_infer_s']:.1f}s; "
        f"recompiles {jx['recompiles_train']}/{jx['recompiles_infer']}; params JAX {jx['num_params']} "
        f"torch {th['num_params']}")
  with open(args.out, "w") as f:
    json.dump(result, f, indent=2)
  return result


if __name__ == "__main__":
  main()
