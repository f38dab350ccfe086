"""Benchmark: points per CPU-second of the torsion loss, forward + backward, JAX vs PyTorch.

  python -m g2.bench [--batch 256] [--repeats 3] [--jax_steps 10] [--notebook_steps 2]
                     [--perm_steps 1] [--out g2_bench.json]

All rows use the original's φ network (Fourier(32) -> 64 -> 384 -> 384 -> 256 -> 35, SiLU),
φ = φ0 + net(x), x ~ U[0, 2π]^7, the same batch, on this machine's CPU, in one process.
* jax: the correct loss mean(|dφ|²_g + |dψ|²_g) with g = g_φ from the B-formula and ψ = ⋆_g φ
  (objective.training_geometry: one jacfwd of the network, 7 JVPs through φ -> ψ),
  jit(value_and_grad).
* torch, reference row: the trained notebook's pattern (g2/torch_reference.py): 35
  autograd.grad calls for the partial derivatives, closure = mean(dφ²), co-closure = mean(φ²);
  loss.backward(). Its derivatives are checked against central differences first.
* torch, second row (labelled): the standalone operators with the contraction "metric" and a
  5040-permutation Python Hodge-star loop, which the notebook never executed.
Protocol: JAX and the reference are timed alternately `repeats` times (equal repetitions,
median and spread reported), torch on as many threads as XLA uses here (2). The 1-minute load
average is recorded before and after, and the CPU time of other processes is measured during the
run (common.benchmarking): with a load above --max_load at the start or other processes using
more than 0.25 cores on average, no result is written (exit code 2).
Memory: XLA's compiled temporary buffer size per point at two batch sizes (flat = O(1)).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from common import benchmarking
from common import runtime
from g2 import g2form, objective

HIDDEN = (384, 384, 256)
N_FOURIER = 32
OUTPUT_INIT_SCALE = 1e-2  # keeps φ0 + net(x) a positive 3-form at initialisation


class FourierPhiNet(nn.Module):
  """The original's φ network in Flax: x [7] -> 35 components of φ0 + net(x)."""
  hidden: tuple[int, ...] = HIDDEN
  n_fourier: int = N_FOURIER

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    # Fixed random frequencies, as the original (stop_gradient: a buffer, not a parameter).
    b = jax.lax.stop_gradient(self.param("fourier_b", nn.initializers.normal(1.0),
                                         (7, self.n_fourier)))
    proj = 2 * jnp.pi * x @ b
    h = jnp.concatenate([jnp.sin(proj), jnp.cos(proj)], axis=-1)
    for width in self.hidden:
      h = nn.silu(nn.Dense(width)(h))
    out = nn.Dense(35, kernel_init=nn.initializers.variance_scaling(
        OUTPUT_INIT_SCALE**2, "fan_in", "normal"))(h)
    return g2form.phi0(x.dtype) + out


def make_jax_step(model: FourierPhiNet):
  """jit(value_and_grad) of the batch-mean torsion loss |dφ|² + |dψ|² w.r.t. the parameters."""
  def loss_fn(params, xs):
    t = jax.vmap(lambda x: objective.training_geometry(lambda y: model.apply(params, y), x))(xs)
    return jnp.mean(t["dphi_sq"] + t["dpsi_sq"])
  return jax.jit(jax.value_and_grad(loss_fn))


def _median_spread(values) -> dict:
  v = np.asarray(values, np.float64)
  return {"median": float(np.median(v)), "min": float(v.min()), "max": float(v.max()),
          "n": int(v.size)}


class JaxRow:
  """Compiled JAX step; `time(steps)` returns (wall s/step, CPU s/step)."""

  def __init__(self, batch: int, seed: int = 0):
    self.model = FourierPhiNet()
    key_p, key_x = jax.random.split(jax.random.PRNGKey(seed))
    self.params = self.model.init(key_p, jnp.zeros(7))
    self.n_params = sum(int(np.prod(p.shape)) for p in jax.tree_util.tree_leaves(self.params))
    self.xs = jax.random.uniform(key_x, (batch, 7), minval=0.0, maxval=2 * jnp.pi)
    t0 = time.perf_counter()
    self.step = make_jax_step(self.model).lower(self.params, self.xs).compile()
    self.compile_s = time.perf_counter() - t0
    cost = self.step.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    self.flops_per_point = float(cost["flops"]) / batch if cost and "flops" in cost else None
    loss, grads = self.step(self.params, self.xs)
    jax.block_until_ready(grads)
    self.loss = float(loss)
    if not np.isfinite(self.loss):
      raise FloatingPointError(f"jax torsion loss is {self.loss} at initialisation")

  def time(self, steps: int) -> tuple[float, float]:
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(steps):
      loss, grads = self.step(self.params, self.xs)
    jax.block_until_ready(grads)
    return (time.perf_counter() - t0) / steps, (time.process_time() - c0) / steps


class TorchRow:
  """One torch pattern ("notebook" or "permutation_loop"); `time(steps)` as JaxRow."""

  def __init__(self, batch: int, pattern: str, seed: int = 0):
    import torch  # pylint: disable=g-import-not-at-top

    from g2 import torch_reference  # pylint: disable=g-import-not-at-top
    torch.manual_seed(seed)
    self.model = torch_reference.ModularPhiNetwork(phi_offset=np.asarray(g2form.phi0(jnp.float32)))
    with torch.no_grad():
      self.model.mlp[-1].weight.mul_(OUTPUT_INIT_SCALE)
    self.n_params = sum(p.numel() for p in self.model.parameters())
    self.xs = torch.rand(batch, 7) * 2 * torch.pi
    self.fn = {"notebook": torch_reference.train_step_notebook,
               "permutation_loop": torch_reference.train_step_original}[pattern]
    self.derivative_rel_err = torch_reference.check_derivatives(self.model, self.xs[:4])
    if not self.derivative_rel_err < 1e-4:
      raise FloatingPointError(f"torch reference derivatives are wrong: rel. error "
                               f"{self.derivative_rel_err:.2e} against central differences")
    self.threads, self.version = torch.get_num_threads(), torch.__version__
    self.loss = None
    # FLOPs of the notebook pattern only (profiling the 5040-permutation loop takes minutes).
    self.flops_per_point = self._flops(batch) if pattern == "notebook" else None

  def _flops(self, batch: int) -> float:
    """Matmul/conv FLOPs per point of one step, from torch's profiler (with_flops)."""
    from torch import profiler  # pylint: disable=g-import-not-at-top
    with profiler.profile(activities=[profiler.ProfilerActivity.CPU], with_flops=True) as prof:
      self.fn(self.model, self.xs.clone())
    return float(sum(e.flops for e in prof.key_averages() if e.flops)) / batch

  def time(self, steps: int) -> tuple[float, float]:
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(steps):
      self.loss = self.fn(self.model, self.xs.clone())
    return (time.perf_counter() - t0) / steps, (time.process_time() - c0) / steps


def _summary(batch: int, walls, cpus) -> dict:
  return {"points_per_cpu_s": _median_spread([batch / c for c in cpus]),
          "points_per_s": _median_spread([batch / w for w in walls]),
          "step_s": _median_spread(walls), "cpu_s_per_step": _median_spread(cpus)}


def jax_temp_bytes_per_point(batch: int) -> float:
  """XLA's temporary buffer bytes per point of the compiled step (None if unavailable)."""
  model = FourierPhiNet()
  params = model.init(jax.random.PRNGKey(0), jnp.zeros(7))
  xs = jnp.zeros((batch, 7))
  analysis = make_jax_step(model).lower(params, xs).compile().memory_analysis()
  if analysis is None:
    return None
  return analysis.temp_size_in_bytes / batch


def main(argv=None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--batch", type=int, default=256, help="points per step (all rows)")
  parser.add_argument("--repeats", type=int, default=3, help="alternating JAX/reference timings")
  parser.add_argument("--jax_steps", type=int, default=10, help="JAX steps per timing")
  parser.add_argument("--notebook_steps", type=int, default=2, help="reference steps per timing")
  parser.add_argument("--perm_steps", type=int, default=1,
                      help="steps of the permutation-loop row (once, after the others; 0: skip)")
  parser.add_argument("--threads", type=int, default=2, help="torch threads (= XLA's on 2 cores)")
  parser.add_argument("--max_load", type=float, default=1.5,
                      help="refuse to write a result when the 1-min load average before the run "
                           "is above this")
  parser.add_argument("--memory_batches", type=str, default="256,1024",
                      help="batches for the JAX memory-per-point check ('' to skip)")
  parser.add_argument("--host_tuning", type=int, default=1, choices=(0, 1),
                      help="common.runtime host tuning (glibc malloc arena + 512-bit XLA vectors)")
  parser.add_argument("--out", type=str, default="g2_bench.json", help="JSON output path")
  args = parser.parse_args(argv)
  runtime.tune_host(bool(args.host_tuning))  # before any JAX work (may re-execute once)
  for name in ("batch", "repeats", "jax_steps", "notebook_steps", "threads"):
    if getattr(args, name) < 1:
      print(f"--{name}={getattr(args, name)!r} is invalid: allowed an integer >= 1")
      raise SystemExit(2)
  import torch  # pylint: disable=g-import-not-at-top
  torch.set_num_threads(args.threads)

  load = benchmarking.LoadMonitor()
  load_before = os.getloadavg()
  result = dict(batch=args.batch, backend=jax.default_backend(), device=str(jax.devices()[0]),
                cpu_count=os.cpu_count(), machine=platform.processor() or platform.machine(),
                jax_version=jax.__version__, torch_threads=args.threads,
                load_average_before=load_before, xla_flags=os.environ.get("XLA_FLAGS", ""),
                malloc_arena_max=os.environ.get("MALLOC_ARENA_MAX"))
  jrow = JaxRow(args.batch)
  nrow = TorchRow(args.batch, "notebook")
  nrow.time(1)  # warm-up
  jw, jc, nw, nc = [], [], [], []
  for _ in range(args.repeats):
    w, c = jrow.time(args.jax_steps)
    jw.append(w), jc.append(c)
    w, c = nrow.time(args.notebook_steps)
    nw.append(w), nc.append(c)
  result["jax"] = {**_summary(args.batch, jw, jc), "loss": jrow.loss, "compile_s": jrow.compile_s,
                   "n_params": jrow.n_params - 7 * N_FOURIER, "steps_per_timing": args.jax_steps}
  result["torch_notebook"] = {**_summary(args.batch, nw, nc), "loss": nrow.loss,
                              "n_params": nrow.n_params, "threads": nrow.threads,
                              "version": nrow.version, "steps_per_timing": args.notebook_steps,
                              "derivative_rel_err": nrow.derivative_rel_err}
  for key, row in (("jax", jrow), ("torch_notebook", nrow)):
    flops = row.flops_per_point
    result[key]["flops_per_point"] = flops
    result[key]["gflop_per_cpu_s"] = (None if flops is None else
                                      flops * result[key]["points_per_cpu_s"]["median"] / 1e9)
  result["ratio_per_cpu_s"] = (result["jax"]["points_per_cpu_s"]["median"]
                               / result["torch_notebook"]["points_per_cpu_s"]["median"])
  result["ratio_wall"] = (result["jax"]["points_per_s"]["median"]
                          / result["torch_notebook"]["points_per_s"]["median"])
  if args.perm_steps > 0:
    prow = TorchRow(args.batch, "permutation_loop")
    w, c = prow.time(args.perm_steps)
    result["torch_permutation_loop"] = {**_summary(args.batch, [w], [c]), "loss": prow.loss,
                                        "steps": args.perm_steps}
  if args.memory_batches:
    result["jax_temp_bytes_per_point"] = {
        int(b): jax_temp_bytes_per_point(int(b)) for b in args.memory_batches.split(",")}
  result["load_average_after"] = os.getloadavg()
  load.sample()
  result.update(load.record())

  rows = [("implementation", "loss", "points/cpu-s (median [min, max])", "points/s", "step s")]
  for key, label in (("jax", "jax g2 (correct |dφ|²+|dψ|²)"),
                     ("torch_notebook", "torch, trained notebook (reference)"),
                     ("torch_permutation_loop", "torch, 5040-permutation ⋆ loop")):
    if key in result:
      r = result[key]
      p = r["points_per_cpu_s"]
      rows.append((label, f"{r['loss']:.3e}", f"{p['median']:.1f} [{p['min']:.1f}, {p['max']:.1f}]",
                   f"{r['points_per_s']['median']:.1f}", f"{r['step_s']['median']:.3f}"))
  widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
  print(f"g2 torsion loss fwd+bwd, batch {args.batch}, {result['device']}, load before "
        f"{load_before[0]:.2f}")
  for r in rows:
    print("  ".join(c.ljust(w) for c, w in zip(r, widths)))
  print(f"jax / notebook reference: {result['ratio_per_cpu_s']:.1f}x per CPU-second, "
        f"{result['ratio_wall']:.1f}x wall-clock")
  jf, nf = result["jax"]["flops_per_point"], result["torch_notebook"]["flops_per_point"]
  if jf and nf:
    result["flop_ratio"] = nf / jf
    print(f"FLOPs per point: jax {jf / 1e6:.1f} M (XLA cost analysis, whole step), reference "
          f"{nf / 1e6:.1f} M (torch profiler, matmuls only) = {nf / jf:.1f}x fewer for JAX; "
          f"throughput jax {result['jax']['gflop_per_cpu_s']:.1f}, reference "
          f"{result['torch_notebook']['gflop_per_cpu_s']:.1f} GFLOP per CPU-second")
  print(f"other processes used {load.foreign_cores:.2f} CPU cores on average during the run")
  benchmarking.refuse_if_loaded(load, args.out, args.max_load)
  with open(args.out, "w") as f:
    json.dump(result, f, indent=2)
  print(f"wrote {args.out}")
  return result


if __name__ == "__main__":
  main()
