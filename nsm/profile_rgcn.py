"""python -m nsm.profile_rgcn: where the flat R-GCN's train step spends its time (XLA:CPU).

Times, on the benchmark's batches (causal v2, batch 64, hidden 64; `nsm.bench`), each piece of
one sparse R-GCN layer alone (forward, and forward + backward = the VJP w.r.t. its inputs and
weights), the whole layer per kernel (`impl` table / grouped, padded and on the real
nodes/edges only), and the whole FlatRGCN train step (loss + grad + Adam) and inference per
kernel. Median of --steps calls after warm-up, in milliseconds. Run pinned and idle:

  heavy -x taskset -c 0 python -m nsm.profile_rgcn --out nsm/figures/profile_rgcn.json
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import jraph

from configs import nsm as nsm_config
from nsm import bench
from nsm import data as data_lib
from nsm import layers
from nsm import model as model_lib
from nsm import train as train_lib


def _ms(fn, *args, steps=20, warmup=3):
  for _ in range(warmup):
    jax.block_until_ready(fn(*args))
  ts = []
  for _ in range(steps):
    t = time.perf_counter()
    jax.block_until_ready(fn(*args))
    ts.append(time.perf_counter() - t)
  return 1e3 * statistics.median(ts)


def _fwd_bwd(f):
  """jit(f) and jit(f's VJP with a fixed cotangent) over all float arguments."""
  def vjp(*args):
    out, pull = jax.vjp(f, *args)
    return pull(jnp.ones_like(out))
  return jax.jit(f), jax.jit(vjp)


def layer_pieces(g, r, hidden, num_bases, steps):
  """Per-piece timings of the table kernel and the grouped kernel's pieces (one layer)."""
  x, s, rc, t = g.nodes, g.senders, g.receivers, g.edges["type"]
  n, f = x.shape
  emask = jraph.get_edge_padding_mask(g)
  key = jax.random.PRNGKey(0)
  w_all = jax.random.normal(key, (f, r * hidden)) / 8
  table = (x @ w_all).reshape(n * r, hidden)
  msg = table[s * r + t]
  out = {}
  pieces = {
      "table_matmul x[N,F] @ W_all[F,R*O]": (lambda x, w: x @ w, (x, w_all)),
      "table_gather T[senders*R+type] (E rows)": (lambda tb: tb[s * r + t], (table,)),
      "segment_sum by receiver (E rows -> N)": (
          lambda m: jax.ops.segment_sum(m, rc, num_segments=n), (msg,)),
      "root_dense x @ W_root": (lambda x, w: x @ w, (x, w_all[:, :hidden])),
  }
  tiles = jax.jit(layers.edge_tiles, static_argnums=(5, 6, 7))(
      s, rc, t, g.edges["conf"], emask, n, r, "pyg_mean")
  nt = tiles.tile_relation.shape[0]
  w_t = jax.random.normal(key, (nt, f, hidden)) / 8
  xs = x[tiles.sender].reshape(nt, -1, f)
  pieces.update({
      "grouped_gather x[slot_sender] (S rows)": (lambda x: x[tiles.sender], (x,)),
      "grouped_tile_matmul [tiles,T,F]x[tiles,F,O]": (
          lambda a, w: jnp.einsum("tkf,tfo->tko", a, w), (xs, w_t)),
      "grouped_segment_sum (S rows -> N)": (
          lambda m: jax.ops.segment_sum(m, tiles.receiver, num_segments=n),
          (xs.reshape(-1, f),)),
  })
  for name, (fn, args) in pieces.items():
    fwd, bwd = _fwd_bwd(fn)
    out[name] = {"fwd_ms": _ms(fwd, *args, steps=steps), "fwd_bwd_ms": _ms(bwd, *args, steps=steps)}
  sched = jax.jit(lambda: layers.edge_tiles(s, rc, t, g.edges["conf"], emask, n, r, "pyg_mean"))
  out["grouped_schedule edge_tiles (once per batch)"] = {"fwd_ms": _ms(sched, steps=steps)}
  out["slots S, tiles, real edges, padded edges, real nodes, padded nodes"] = [
      int(tiles.sender.shape[0]), nt, int(emask.sum()), int(emask.shape[0]),
      int(jraph.get_node_padding_mask(g).sum()), n]
  return out


def whole_layer(g, r, hidden, num_bases, impl, steps, real_only=False, tile=layers.TILE):
  """One RGCNLayer (pyg_mean) forward and forward+backward, padded or on the real part only."""
  if real_only:
    k = int(jraph.get_graph_padding_mask(g).sum())
    nr, er = int(g.n_node[:k].sum()), int(g.n_edge[:k].sum())
    g = g._replace(nodes=g.nodes[:nr], senders=g.senders[:er], receivers=g.receivers[:er],
                   edges={k_: v[:er] for k_, v in g.edges.items()})
  emask = (jnp.ones(g.senders.shape[0], bool) if real_only else jraph.get_edge_padding_mask(g))
  layer = layers.RGCNLayer(hidden, r, num_bases, "pyg_mean", impl, tile)
  rest = (g.senders, g.receivers, g.edges["type"], g.edges["conf"], emask)
  params = jax.jit(layer.init)(jax.random.PRNGKey(0), g.nodes, *rest)
  fwd, bwd = _fwd_bwd(lambda p, x: layer.apply(p, x, *rest))
  return {"fwd_ms": _ms(fwd, params, g.nodes, steps=steps),
          "fwd_bwd_ms": _ms(bwd, params, g.nodes, steps=steps)}


def whole_model(dev, flat_cfg, steps):
  """FlatRGCN train step (nsm.bench.jax_steps: CE + grad + Adam, dropout on) and inference, ms."""
  model = model_lib.build_model(flat_cfg)
  params = jax.jit(model.init)(jax.random.PRNGKey(0), dev[0])
  tx, train, infer = bench.jax_steps(model)
  st = {"carry": (params, tx.init(params))}  # the train step donates its carry: thread it
  rng = jax.random.PRNGKey(1)

  def train_once():
    st["carry"], loss = train(st["carry"], dev[1], rng)
    return loss

  return {"train_ms": _ms(train_once, steps=steps),
          "infer_ms": _ms(lambda: infer(st["carry"][0], dev[1]), steps=steps)}


def dropout_masks(x, rate, steps):
  """One dropout layer (train mode) on x: flax.linen.Dropout vs layers.Dropout (same masks)."""
  key = jax.random.PRNGKey(0)
  out = {}
  for name, module in (("flax nn.Dropout", nn.Dropout), ("layers.Dropout (unrolled Threefry)",
                                                          layers.Dropout)):
    fwd, bwd = _fwd_bwd(lambda x, m=module: m(rate, deterministic=False).apply(
        {}, x, rngs={"dropout": key}))
    out[name] = {"fwd_ms": _ms(fwd, x, steps=steps), "fwd_bwd_ms": _ms(bwd, x, steps=steps)}
  return out


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--steps", type=int, default=20)
  p.add_argument("--depth", type=int, default=6)
  p.add_argument("--hidden", type=int, default=64)
  p.add_argument("--tiles", default="8,16,32,64", help="grouped tile sizes of the layer rows")
  p.add_argument("--out", default="")
  args = p.parse_args(argv)
  config = nsm_config.get_config("default")
  # hops 3: the graphs of the profiles in nsm/README.md (the causal default until session 10).
  ds = data_lib.build_dataset("causal", "v2", 2000, 0, hops=3)
  splits = data_lib.split_indices(len(ds.graphs), (0.7, 0.15, 0.15), 0)
  batches = data_lib.Batches(ds, splits, 64, 0)
  dev = [jax.tree.map(jnp.asarray, batches.train_batch(i)) for i in range(2)]
  r, h, nb = ds.num_relations, args.hidden, config.model.num_bases
  result = {"affinity": sorted(os.sched_getaffinity(0)),
            "loadavg": [float(v) for v in open("/proc/loadavg").read().split()[:3]],
            "pieces": layer_pieces(dev[1], r, h, nb, args.steps), "layer": {}, "model": {}}
  for real in (False, True):
    result["layer"][f"table{' real-only' if real else ' padded'}"] = whole_layer(
        dev[1], r, h, nb, "table", args.steps, real)
  for tile in (int(v) for v in args.tiles.split(",")):
    result["layer"][f"grouped T={tile} padded"] = whole_layer(
        dev[1], r, h, nb, "grouped", args.steps, tile=tile)
  flat = train_lib.flat_config(config, r, args.depth, h)
  result["dropout"] = dropout_masks(jnp.ones((dev[1].nodes.shape[0], h)), config.model.dropout,
                                    args.steps)
  for impl in layers.IMPLS:
    result["model"][impl] = whole_model(dev, dataclasses.replace(flat, rgcn_impl=impl), args.steps)
  result["model"]["grouped, dropout 0"] = whole_model(
      dev, dataclasses.replace(flat, rgcn_impl="grouped", dropout=0.0), args.steps)
  print(json.dumps(result, indent=1))
  if args.out:
    with open(args.out, "w") as f:
      json.dump(result, f, indent=2)


if __name__ == "__main__":
  main()
