"""python -m growth.bench: ours (JAX) vs a PyTorch reference, side by side in one process.

1. GPT train step (forward + backward + AdamW) per active depth: median step time, tokens/s,
   compile time apart. Reference: the same nanoGPT-style model in PyTorch (eager, CPU).
2. Trajectory extrapolation of one block (S snapshots): ours = jitted Gram-trick eigh per tensor;
   reference = the original's per-tensor NumPy path (full-matrices-off SVD of the centred
   (S-1) x mn velocity matrix), as in AIether's GeometricExtrapolator.
Prints a table and writes JSON (--out). Median of --steps timed calls after --warmup calls.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time

# The reference NumPy SVD runs single-threaded BLAS (set before NumPy loads): on a shared 2-core
# machine a multi-threaded BLAS/OpenMP pool oversubscribes and measured 1.6 s for a 7 x 12288 SVD.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import jax
import jax.numpy as jnp
import numpy as np

from growth import geometry
from growth import model as model_lib
from growth import steps as steps_lib


def _median_time(fn, warmup: int, n: int) -> float:
  for _ in range(warmup):
    fn()
  ts = []
  for _ in range(n):
    t = time.perf_counter()
    fn()
    ts.append(time.perf_counter() - t)
  return statistics.median(ts)


def bench_jax_step(cfg, depth, batch, args) -> dict:
  spec = steps_lib.OptimSpec()
  state = steps_lib.place(steps_lib.init_state(cfg, depth, spec, 4, jax.random.key(0)))
  state = state.replace(budget_used=jnp.float32(0.5))
  fn = steps_lib.train_step_fn(cfg, depth, spec, 1e-6)
  box = {"state": state}
  t = time.perf_counter()
  box["state"], m = fn(box["state"], batch)
  jax.block_until_ready(m)
  compile_s = time.perf_counter() - t

  def call():
    box["state"], m = fn(box["state"], batch)
    jax.block_until_ready(m["train/loss"])

  n_params = sum(x.size for x in jax.tree.leaves(state.params))
  return {"step_s": _median_time(call, args.warmup, args.steps), "compile_s": compile_s,
          "params": int(n_params)}


def bench_torch_step(cfg, depth, batch, args) -> dict:
  import torch  # pylint: disable=g-import-not-at-top
  from torch import nn  # pylint: disable=g-import-not-at-top
  import torch.nn.functional as F  # pylint: disable=g-import-not-at-top

  class Block(nn.Module):
    def __init__(self):
      super().__init__()
      d = cfg.d_model
      self.ln_1, self.ln_2 = nn.LayerNorm(d), nn.LayerNorm(d)
      self.c_attn, self.attn_c_proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
      self.c_fc, self.mlp_c_proj = nn.Linear(d, cfg.mlp_ratio * d), nn.Linear(cfg.mlp_ratio * d, d)

    def forward(self, x):
      b, t, d = x.shape
      q, k, v = self.c_attn(self.ln_1(x)).view(b, t, 3, cfg.n_heads, d // cfg.n_heads).unbind(2)
      y = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
                                         is_causal=True)
      x = x + self.attn_c_proj(y.transpose(1, 2).reshape(b, t, d))
      return x + self.mlp_c_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))

  class GPT(nn.Module):
    def __init__(self):
      super().__init__()
      self.wte = nn.Embedding(cfg.vocab_size, cfg.d_model)
      self.wpe = nn.Parameter(torch.randn(cfg.seq_len, cfg.d_model) * 0.02)
      self.blocks = nn.ModuleList([Block() for _ in range(depth)])
      self.ln_f = nn.LayerNorm(cfg.d_model)

    def forward(self, idx):
      x = self.wte(idx) + self.wpe[: idx.shape[1]]
      for blk in self.blocks:
        x = blk(x)
      return self.ln_f(x) @ self.wte.weight.T

  torch.set_num_threads(args.torch_threads)
  torch.manual_seed(0)
  model = GPT()
  opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.99), weight_decay=0.1)
  x = torch.from_numpy(np.asarray(batch["x"]).astype(np.int64))
  y = torch.from_numpy(np.asarray(batch["y"]).astype(np.int64))

  def call():
    logits = model(x)
    loss = F.cross_entropy(logits.reshape(-1, cfg.vocab_size), y.reshape(-1))
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()

  n_params = sum(p.numel() for p in model.parameters())
  return {"step_s": _median_time(call, args.warmup, args.steps), "compile_s": 0.0,
          "params": int(n_params), "threads": torch.get_num_threads()}


def original_extrapolate_numpy(history: np.ndarray, k: int, ell: int) -> np.ndarray:
  """The original's per-tensor path (centred full SVD, raw V_U/A_U, eta0*tau*kappa).

  1-D tensors ([S, d]): no SVD, W_last + beta*v_mean + gamma*a_mean, as in the original.
  """
  s = history.shape[0]
  v = np.diff(history, axis=0)
  delta = history[-1] - history[0]
  tau = np.linalg.norm(v.reshape(s - 1, -1), axis=1).sum() / (np.linalg.norm(delta) + 1e-8)
  u = (delta / (np.linalg.norm(delta) + 1e-8)).reshape(-1)
  vf = v.reshape(s - 1, -1)
  par = vf @ u
  kappa = np.linalg.norm(vf - par[:, None] * u, axis=1).sum() / (np.abs(par).sum() + 1e-8)
  v_mean = vf.mean(0)
  a_mean = (vf[-1] - vf[0]) / (s - 2)
  if history.ndim == 2:
    step = 0.1 / tau * v_mean + 0.15 / (1 + kappa) * a_mean
    return history[-1] + step.reshape(history.shape[1:])
  _, sig, vt = np.linalg.svd(vf - v_mean, full_matrices=False)
  q = vt.T[:, :k]
  esc = (vt.T[:, k:k + ell] * sig[k:k + ell]).sum(1)
  esc /= np.linalg.norm(esc) + 1e-8
  step = 0.1 / tau * (q @ (q.T @ v_mean)) + 0.15 / (1 + kappa) * (q @ (q.T @ a_mean))
  return history[-1] + (step + 0.03 * tau * kappa * esc).reshape(history.shape[1:])


def bench_extrapolation(cfg, args) -> dict:
  s, k, ell = args.history, 4, 2
  block = model_lib.init_block(cfg, jax.random.key(0))
  rng = np.random.default_rng(0)
  hist = {}
  for path, p in jax.tree_util.tree_flatten_with_path(block)[0]:
    walk = np.cumsum(rng.normal(size=(s,) + p.shape).astype(np.float32) * 1e-3, axis=0)
    hist[jax.tree_util.keystr(path)] = walk + np.asarray(p)[None]
  ext = geometry.ExtrapolationConfig(k_subspace=k, ell_orth=ell)
  hist_j = jax.device_put(hist)
  out = geometry.extrapolate_tree(hist_j, ext)  # compile
  ours = _median_time(lambda: geometry.extrapolate_tree(hist_j, ext), 1, args.steps)
  ref = _median_time(lambda: {n: original_extrapolate_numpy(h, k, ell)
                              for n, h in hist.items()}, 1, args.steps)
  del out
  return {"history": s, "block_params": int(sum(np.asarray(p).size for p in jax.tree.leaves(block))),
          "ours_s": ours, "reference_s": ref}


def main(argv=None) -> dict:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--d_model", type=int, default=64)
  p.add_argument("--seq_len", type=int, default=64)
  p.add_argument("--batch", type=int, default=16)
  p.add_argument("--depths", default="1,2,4")
  p.add_argument("--history", type=int, default=8)
  p.add_argument("--warmup", type=int, default=3)
  p.add_argument("--steps", type=int, default=15)
  p.add_argument("--torch_threads", type=int, default=1,
                 help="PyTorch intra-op threads (default threads oversubscribe a shared CPU: "
                      "870 ms/step vs 53 ms with 1 thread, measured)")
  p.add_argument("--out", default="bench_results/growth.json")
  args = p.parse_args(argv)
  cfg = model_lib.GPTConfig(vocab_size=256, seq_len=args.seq_len, d_model=args.d_model,
                            n_heads=4)
  rng = np.random.default_rng(0)
  x = rng.integers(0, 256, size=(args.batch, args.seq_len + 1)).astype(np.int32)
  batch = {"x": x[:, :-1], "y": x[:, 1:]}
  tokens = args.batch * args.seq_len
  rows = []
  print(f"backend {jax.default_backend()}, {jax.device_count()} device(s); "
        f"d={args.d_model} T={args.seq_len} B={args.batch}")
  print(f"{'depth':>5} {'params':>9} {'jax ms':>8} {'torch ms':>9} {'jax tok/s':>10} "
        f"{'torch tok/s':>11} {'speedup':>8} {'jax compile s':>13}")
  for depth in [int(d) for d in args.depths.split(",")]:
    j = bench_jax_step(cfg, depth, batch, args)
    t = bench_torch_step(cfg, depth, batch, args)
    row = {"depth": depth, "jax": j, "torch": t, "speedup": t["step_s"] / j["step_s"],
           "flops_per_step": model_lib.train_flops_per_token(cfg, depth) * tokens}
    rows.append(row)
    print(f"{depth:>5} {j['params']:>9} {1e3 * j['step_s']:>8.2f} {1e3 * t['step_s']:>9.2f} "
          f"{tokens / j['step_s']:>10.0f} {tokens / t['step_s']:>11.0f} {row['speedup']:>7.2f}x "
          f"{j['compile_s']:>13.2f}")
  e = bench_extrapolation(cfg, args)
  e["speedup"] = e["reference_s"] / e["ours_s"]
  print(f"\nextrapolate one block ({e['block_params']} params, S={e['history']}): ours "
        f"{1e3 * e['ours_s']:.2f} ms (jit, Gram trick) vs original NumPy SVD path "
        f"{1e3 * e['reference_s']:.2f} ms -> {e['speedup']:.2f}x")
  result = {"config": vars(args), "train_step": rows, "extrapolation": e}
  os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
  with open(args.out, "w") as f:
    json.dump(result, f, indent=1)
  return result


if __name__ == "__main__":
  main()
