"""Benchmark: points/s of the torsion loss, forward + backward, JAX (this package) vs PyTorch.

  python -m g2.bench [--batch 256] [--jax_steps 10] [--torch_steps 2] [--out g2_bench.json]

Both sides use the original's φ network (Fourier(32) -> 64 -> 384 -> 384 -> 256 -> 35, SiLU),
φ = φ0 + net(x), x ~ U[0, 2π]^7, the same batch, on this machine's CPU, in one run.
* jax: the correct loss mean(|dφ|²_g + |dψ|²_g) with g = g_φ from the B-formula and ψ = ⋆_g φ
  (g2form.torsion: one jacfwd of the network, 7 JVPs through φ -> ψ), jit(value_and_grad).
* torch: the original's pattern (g2/torch_reference.py): 35 autograd.grad calls for the partial
  derivatives, the contraction "metric", a 5040-permutation Python Hodge-star loop; loss.backward().
The torch side computes a cheaper (and wrong) loss; the ratio is what the original's structure
costs. Both wall-clock points/s and points per CPU-second (process time, all threads) are
reported: on a shared machine the Python-loop-bound torch side suffers more from contention.
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

from g2 import g2form

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
    tors = jax.vmap(g2form.torsion(lambda x: model.apply(params, x)))(xs)
    return jnp.mean(tors["dphi_sq"] + tors["dpsi_sq"])
  return jax.jit(jax.value_and_grad(loss_fn))


def bench_jax(batch: int, steps: int, seed: int = 0) -> dict:
  model = FourierPhiNet()
  key_p, key_x = jax.random.split(jax.random.PRNGKey(seed))
  params = model.init(key_p, jnp.zeros(7))
  n_params = sum(int(np.prod(p.shape)) for p in jax.tree_util.tree_leaves(params))
  xs = jax.random.uniform(key_x, (batch, 7), minval=0.0, maxval=2 * jnp.pi)
  step = make_jax_step(model)
  t0 = time.perf_counter()
  compiled = step.lower(params, xs).compile()
  compile_s = time.perf_counter() - t0
  loss, grads = compiled(params, xs)
  jax.block_until_ready(grads)
  if not np.isfinite(float(loss)):
    raise FloatingPointError(f"jax torsion loss is {float(loss)} at initialisation")
  t0, c0 = time.perf_counter(), time.process_time()
  for _ in range(steps):
    loss, grads = compiled(params, xs)
  jax.block_until_ready(grads)
  sec = (time.perf_counter() - t0) / steps
  cpu = (time.process_time() - c0) / steps
  return dict(points_per_s=batch / sec, step_s=sec, cpu_s_per_step=cpu,
              points_per_cpu_s=batch / cpu, compile_s=compile_s, loss=float(loss),
              n_params=n_params - 7 * N_FOURIER, steps=steps)


def jax_temp_bytes_per_point(batch: int) -> float:
  """XLA's temporary buffer bytes per point of the compiled step (None if unavailable)."""
  model = FourierPhiNet()
  params = model.init(jax.random.PRNGKey(0), jnp.zeros(7))
  xs = jnp.zeros((batch, 7))
  analysis = make_jax_step(model).lower(params, xs).compile().memory_analysis()
  if analysis is None:
    return None
  return analysis.temp_size_in_bytes / batch


def bench_torch(batch: int, steps: int, warmup: int = 1, seed: int = 0) -> dict:
  import torch  # pylint: disable=g-import-not-at-top

  from g2 import torch_reference  # pylint: disable=g-import-not-at-top
  torch.manual_seed(seed)
  model = torch_reference.ModularPhiNetwork(phi_offset=np.asarray(g2form.phi0(jnp.float32)))
  with torch.no_grad():
    model.mlp[-1].weight.mul_(OUTPUT_INIT_SCALE)
  n_params = sum(p.numel() for p in model.parameters())
  xs = torch.rand(batch, 7) * 2 * torch.pi
  for _ in range(warmup):
    torch_reference.train_step_original(model, xs.clone())
  t0, c0 = time.perf_counter(), time.process_time()
  for _ in range(steps):
    loss = torch_reference.train_step_original(model, xs.clone())
  sec = (time.perf_counter() - t0) / steps
  cpu = (time.process_time() - c0) / steps
  return dict(points_per_s=batch / sec, step_s=sec, cpu_s_per_step=cpu,
              points_per_cpu_s=batch / cpu, loss=loss, n_params=n_params, steps=steps,
              warmup=warmup, threads=torch.get_num_threads(), version=torch.__version__)


def main(argv=None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--batch", type=int, default=256, help="points per step (both sides)")
  parser.add_argument("--jax_steps", type=int, default=10, help="timed JAX steps")
  parser.add_argument("--torch_steps", type=int, default=2, help="timed PyTorch steps")
  parser.add_argument("--torch_warmup", type=int, default=1, help="untimed PyTorch steps first")
  parser.add_argument("--memory_batches", type=str, default="256,1024",
                      help="batches for the JAX memory-per-point check ('' to skip)")
  parser.add_argument("--skip_torch", action="store_true", help="JAX only (e.g. on a GPU host)")
  parser.add_argument("--out", type=str, default="g2_bench.json", help="JSON output path")
  args = parser.parse_args(argv)
  for name in ("batch", "jax_steps", "torch_steps"):
    if getattr(args, name) < 1:
      raise ValueError(f"--{name}={getattr(args, name)!r} is invalid: allowed an integer >= 1")

  result = dict(batch=args.batch, backend=jax.default_backend(),
                device=str(jax.devices()[0]), cpu_count=os.cpu_count(),
                machine=platform.processor() or platform.machine(), jax_version=jax.__version__)
  result["jax"] = bench_jax(args.batch, args.jax_steps)
  if not args.skip_torch:
    result["torch"] = bench_torch(args.batch, args.torch_steps, args.torch_warmup)
    result["speedup"] = result["jax"]["points_per_s"] / result["torch"]["points_per_s"]
    result["speedup_per_cpu_s"] = (result["jax"]["points_per_cpu_s"]
                                   / result["torch"]["points_per_cpu_s"])
  if args.memory_batches:
    result["jax_temp_bytes_per_point"] = {
        int(b): jax_temp_bytes_per_point(int(b)) for b in args.memory_batches.split(",")}

  rows = [("implementation", "loss", "points/s", "points/cpu-s", "step s", "compile s")]
  r = result["jax"]
  rows.append(("jax g2 (correct |dφ|²+|dψ|²)", f"{r['loss']:.3e}", f"{r['points_per_s']:.1f}",
               f"{r['points_per_cpu_s']:.1f}", f"{r['step_s']:.3f}", f"{r['compile_s']:.1f}"))
  if "torch" in result:
    r = result["torch"]
    rows.append(("torch original pattern", f"{r['loss']:.3e}", f"{r['points_per_s']:.2f}",
                 f"{r['points_per_cpu_s']:.2f}", f"{r['step_s']:.3f}", "-"))
  widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
  print(f"g2 torsion loss fwd+bwd, batch {args.batch}, {result['device']}")
  for r in rows:
    print("  ".join(c.ljust(w) for c, w in zip(r, widths)))
  if "speedup" in result:
    print(f"speedup jax / torch: {result['speedup']:.1f}x wall-clock, "
          f"{result['speedup_per_cpu_s']:.1f}x per CPU-second")
  if "jax_temp_bytes_per_point" in result:
    print("jax temp bytes/point:", {k: None if v is None else round(v)
                                    for k, v in result["jax_temp_bytes_per_point"].items()})
  with open(args.out, "w") as f:
    json.dump(result, f, indent=2)
  print(f"wrote {args.out}")
  return result


if __name__ == "__main__":
  main()
