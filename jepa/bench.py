"""Train-step throughput: this package's jitted I-JEPA / H-JEPA step vs a PyTorch I-JEPA step.

  python -m jepa.bench                       # ViT-Tiny (192/12/3, predictor 192/6), 28 px, patch 4, bs 64
  python -m jepa.bench --config quick --batch 128 --steps 20

Same ViT config, batch and token counts (K_ctx, K_tgt from the mask budget) on both sides, fp32,
all CPU threads; on a GPU machine both sides run on the GPU (JAX's default backend, torch on
`--torch-device`), strict fp32 matmuls unless `--tf32` allows TF32 on both. Compile time is
reported separately; step times are medians after warm-up.
Each JAX variant runs in its own subprocess so it can set its own XLA_FLAGS. The JAX step is the
package's real train step: augmentation and mask sampling run inside it, while the PyTorch step
gets pre-sampled index tensors (no collator cost), so the comparison is conservative for JAX.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

import numpy as np

# XLA:CPU flag sets tried (see README: what each changed).
XLA_VARIANTS = {
    "default": "",
    "onednn": "--xla_cpu_use_onednn=true",
    "xnn_fusion": "--xla_cpu_experimental_xnn_fusion_type=dot,eltwise,reduce",
    "xnn_graph": "--xla_cpu_experimental_xnn_graph_fusion_mode=XNN_GRAPH_FUSION_MODE_GREEDY",
    "ynn_fusion": "--xla_cpu_experimental_ynn_fusion_type=dot,eltwise,reduce",
    "onednn_fusion": "--xla_cpu_use_onednn=true --xla_cpu_experimental_onednn_fusion_type=dot,eltwise,reduce",
    "no_xnnpack": "--xla_cpu_use_xnnpack=false",
}


def _setup(args):
  from configs import jepa as jepa_configs
  from jepa import loss as loss_lib
  from jepa import masking
  from jepa import model as model_lib
  config = jepa_configs.get_config(args.config)
  config.train.batch_size = args.batch
  config.train.num_steps = 10_000
  config.hierarchy.weights = tuple(args.levels)
  vit = model_lib.vit_config(config.model, config.data.image_size, 1)
  hier = loss_lib.hierarchy_from_config(config.hierarchy, vit.depth, vit.grid)
  return config, vit, hier, masking.mask_budget(vit.grid, config.mask)


def _jax_precision(args):
  import jax
  # Strict fp32 by default: XLA:GPU's default f32 dot precision may use TF32, torch's does not.
  if jax.default_backend() != "cpu":
    jax.config.update("jax_default_matmul_precision", "tensorfloat32" if args.tf32 else "highest")


def jax_worker(args) -> dict:
  import jax
  _jax_precision(args)
  from jepa import step as step_lib
  config, vit, hier, budget = _setup(args)
  sched = step_lib.make_schedules(config)
  tx = step_lib.make_optimizer(config, sched)
  state = step_lib.init_state(config, vit, hier, tx, jax.random.PRNGKey(0))
  fn = step_lib.make_train_step(config, vit, hier, sched, np.array([0.286]), np.array([0.353]))
  images = np.random.default_rng(0).integers(0, 256, (args.batch, vit.image_size, vit.image_size, 1), np.uint8)
  batch = {"images": jax.numpy.asarray(images)}
  t0 = time.perf_counter()
  compiled = jax.jit(fn, donate_argnums=0).lower(state, batch).compile()
  compile_s = time.perf_counter() - t0
  times = []
  for _ in range(args.warmup + args.steps):
    t = time.perf_counter()
    state, metrics = compiled(state, batch)
    jax.block_until_ready(metrics["train/loss"])
    times.append(time.perf_counter() - t)
  if args.profile:
    jax.profiler.start_trace(args.profile)
    for _ in range(3):
      state, metrics = compiled(state, batch)
    jax.block_until_ready(metrics["train/loss"])
    jax.profiler.stop_trace()
  return {"compile_s": compile_s, "step_times": times[args.warmup:], "loss": float(metrics["train/loss"]),
          "device": str(jax.devices()[0].device_kind)}


def torch_run(args, sdpa: bool) -> dict:
  import jax
  import torch
  from jepa import bench_torch
  from jepa import masking
  config, vit, _, budget = _setup(args)
  _jax_precision(args)
  device = _torch_device(args)
  torch.set_num_threads(os.cpu_count())
  torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = args.tf32
  step = bench_torch.IJEPAStep(vit, sdpa=sdpa, device=device)
  images = np.random.default_rng(0).integers(0, 256, (args.batch, vit.image_size, vit.image_size, 1), np.uint8)
  sample = jax.jit(lambda k: masking.sample_masks(k, vit.grid, args.batch, config.mask))
  times, loss = [], None
  for i in range(args.warmup + args.steps):
    ctx_idx, _, tgt_idx, _ = map(np.asarray, sample(jax.random.PRNGKey(i)))
    x, ci, ti = bench_torch.to_torch_inputs(images, ctx_idx, tgt_idx, 0.286, 0.353, device)
    t = time.perf_counter()
    loss = step(x, ci, ti)
    times.append(time.perf_counter() - t)
  name = torch.cuda.get_device_name(device) if device.startswith("cuda") else "cpu"
  return {"compile_s": 0.0, "step_times": times[args.warmup:], "loss": loss, "device": name}


def _torch_device(args) -> str:
  import torch
  if args.torch_device == "auto":
    return "cuda" if torch.cuda.is_available() else "cpu"
  if args.torch_device.startswith("cuda") and not torch.cuda.is_available():
    raise ValueError(f"--torch-device={args.torch_device!r} is invalid here: no CUDA device; allowed auto or cpu")
  return args.torch_device


def _spawn_jax(args, variant: str, levels) -> dict:
  env = dict(os.environ)
  env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " " + XLA_VARIANTS[variant]).strip()
  cmd = [sys.executable, "-m", "jepa.bench", "--worker", "--config", args.config, "--batch", str(args.batch),
         "--steps", str(args.steps), "--warmup", str(args.warmup), "--levels", *map(str, levels)]
  if args.tf32:
    cmd.append("--tf32")
  if args.profile and variant == "default":
    cmd += ["--profile", args.profile]
  out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
  if out.returncode:
    return {"error": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else f"rc {out.returncode}"}
  return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--config", default="vit_tiny", help="variant of configs/jepa.py (model + masks)")
  p.add_argument("--batch", type=int, default=64)
  p.add_argument("--steps", type=int, default=12, help="timed steps per run (median reported)")
  p.add_argument("--warmup", type=int, default=2)
  p.add_argument("--levels", type=float, nargs="+", default=[1.0], help="hierarchy weights of the JAX step")
  p.add_argument("--variants", default="default,onednn,xnn_fusion", help=f"XLA flag sets, of {list(XLA_VARIANTS)}")
  p.add_argument("--hjepa", action="store_true", help="also time the 3-level H-JEPA step (best variant)")
  p.add_argument("--sdpa", action="store_true", help="also time torch with scaled_dot_product_attention")
  p.add_argument("--torch-device", default="auto", help="auto (cuda when available, else cpu) | cpu | cuda[:N]")
  p.add_argument("--tf32", action="store_true", help="allow TF32 matmuls on both sides (GPU); default strict fp32")
  p.add_argument("--profile", default="", help="write a JAX profiler trace of the default variant here")
  p.add_argument("--out", default="bench_results/jepa_bench.json")
  p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
  args = p.parse_args(argv)
  if args.worker:
    print(json.dumps(jax_worker(args)))
    return

  _, vit, _, budget = _setup(args)
  rows = []

  def add(name, res, extra=""):
    if "error" in res:
      print(f"{name}: failed: {res['error']}")
      rows.append({"name": name, "error": res["error"]})
      return
    med = statistics.median(res["step_times"])
    rows.append({"name": name, "device": res.get("device", ""), "median_step_s": med,
                 "images_per_s": args.batch / med,
                 "compile_s": res["compile_s"], "loss": res["loss"], "flags": extra,
                 "step_times": res["step_times"]})
    print(f"  {name:<28} {args.batch / med:8.1f} img/s  ({med * 1e3:.0f} ms/step, compile {res['compile_s']:.1f} s)",
          flush=True)

  print(f"jepa.bench: {args.config} ViT {vit.width}/{vit.depth}/{vit.num_heads}, predictor "
        f"{vit.predictor_width}/{vit.predictor_depth}, {vit.image_size} px / patch {vit.patch_size}, batch "
        f"{args.batch}, K_ctx={budget.context_tokens}, K_tgt={budget.max_target_tokens} x {budget.num_blocks}; "
        f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}", flush=True)
  torch_a = torch_run(args, sdpa=False)
  variants = [v for v in args.variants.split(",") if v]
  jax_rows = {}
  for v in variants:
    jax_rows[v] = _spawn_jax(args, v, args.levels)
    add(f"jax ijepa [{v}]", jax_rows[v], XLA_VARIANTS[v])
  torch_b = torch_run(args, sdpa=False)  # A/B/A: torch before and after the JAX runs
  torch_all = {"compile_s": 0.0, "step_times": torch_a["step_times"] + torch_b["step_times"],
               "loss": torch_b["loss"]}
  add("torch ijepa (reference)", torch_all)
  if args.sdpa:
    add("torch ijepa (sdpa)", torch_run(args, sdpa=True))
  ok = {v: r for v, r in jax_rows.items() if "error" not in r}
  best = min(ok, key=lambda v: statistics.median(ok[v]["step_times"])) if ok else None
  if args.hjepa and best:
    add(f"jax hjepa 3 levels [{best}]", _spawn_jax(args, best, [1.0, 0.5, 0.25]), XLA_VARIANTS[best])
  ref = next(r for r in rows if r["name"] == "torch ijepa (reference)")
  for r in rows:
    if "images_per_s" in r:
      r["ratio_vs_torch"] = r["images_per_s"] / ref["images_per_s"]
  print(f"\n| step | img/s | ms/step | compile s | vs torch |\n|---|---|---|---|---|")
  for r in rows:
    if "images_per_s" in r:
      print(f"| {r['name']} | {r['images_per_s']:.1f} | {r['median_step_s'] * 1e3:.0f} | {r['compile_s']:.1f} | "
            f"{r['ratio_vs_torch']:.2f}x |")
  import jax
  import torch
  record = {"config": args.config, "batch": args.batch, "steps": args.steps, "cpus": os.cpu_count(),
            "tf32": args.tf32,
            "load_avg_end": os.getloadavg()[0], "jax": jax.__version__, "torch": torch.__version__,
            "machine": platform.processor() or platform.machine(),
            "K_ctx": budget.context_tokens, "K_tgt": budget.max_target_tokens, "rows": rows}
  os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
  with open(args.out, "w") as f:
    json.dump(record, f, indent=1)
  print(f"wrote {args.out}")


if __name__ == "__main__":
  main()
