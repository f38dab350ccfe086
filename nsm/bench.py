"""python -m nsm.bench: steady-state train/inference graphs/s at batch 64, JAX vs the PyTorch reference.

Both run in this process on the same batches (v2 data of --domain). Timings: median over --steps
steps after --warmup steps, with block_until_ready (JAX) and synchronous CPU execution (torch);
JAX compile time is measured separately (first call) and recompiles are counted.

  python -m nsm.bench --domain planning --steps 100 --out nsm_bench.json
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

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


def bench_jax(config, batches, num_relations, steps, warmup):
  model = model_lib.NSM(train_lib.model_config(config, num_relations))
  host = [batches.train_batch(i) for i in range(8)]
  dev = [jax.tree.map(jnp.asarray, b) for b in host]
  params = model.init(jax.random.PRNGKey(0), dev[0])
  tx = optax.adam(1e-3)
  opt = tx.init(params)

  def train_step(carry, g, rng):
    params, opt = carry
    (loss, _), grads = jax.value_and_grad(train_lib.losses, argnums=1, has_aux=True)(
        model, params, g, train=True, rng=rng, cycle_weight=0.01)
    updates, opt = tx.update(grads, opt, params)
    return (optax.apply_updates(params, updates), opt), loss

  train_jit = jax.jit(train_step, donate_argnums=0)
  infer_jit = jax.jit(lambda p, g: model.apply(p, g)[0].argmax(-1))
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


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--domain", default="planning")
  p.add_argument("--batch_size", type=int, default=64)
  p.add_argument("--steps", type=int, default=100)
  p.add_argument("--warmup", type=int, default=10)
  p.add_argument("--torch_threads", type=int, default=0, help="0 = torch default")
  p.add_argument("--out", default="nsm_bench.json")
  args = p.parse_args(argv)
  config = nsm_config.get_config("default")
  config.model.aggregation = "nsm_mean"  # the original layer semantics, as the torch reference
  ds = data_lib.build_dataset(args.domain, "v2", 2000, 0)
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
