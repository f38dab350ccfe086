"""Train-step throughput: this package's jitted I-JEPA / H-JEPA step vs a PyTorch I-JEPA step.

  python -m jepa.bench                       # ViT-Tiny (192/12/3, predictor 192/6), 28 px, patch 4, bs 64
  python -m jepa.bench --config quick --batch 128 --steps 30

Same ViT config, batch and token counts (K_ctx, K_tgt from the mask budget) on both sides, fp32,
pinned to the same `--threads` CPU cores (default: 1 and 2, one row each); on a GPU machine both sides run on the GPU (JAX's default backend, torch on
`--torch-device`), strict fp32 matmuls unless `--tf32` allows TF32 on both.

Each variant starts two worker processes with the same environment (XLA_FLAGS, host tuning): one
for the JAX step, one for the PyTorch step. The parent steps them **alternately** (J, T, T, J, ...)
so both see the same machine state: on a shared or virtualised CPU, step times drift by 20-50 %
between runs a minute apart, and back-to-back blocks would measure the drift. Separate processes
keep each framework's heap and threads its own. Ratios are median PyTorch step time over median
JAX step time within one variant. Compile time is reported separately.

The JAX step is the package's real train step: augmentation, mask sampling and padding masks run
inside it, while the PyTorch step gets pre-sampled index tensors (no collator cost) and attends
to every token, so the comparison is conservative for JAX. Variant `untuned` switches off the
host tuning of `common.runtime` (glibc malloc settings and huge pages, 512-bit vectors) that
`jepa.main` applies, to show what it is worth.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

from common import benchmarking

# XLA:CPU flag sets tried (see README: what each changed). `untuned` = no common.runtime host tuning.
XLA_VARIANTS = {
    "default": "",
    "untuned": "",
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


def _torch_device(args) -> str:
  import torch
  if args.torch_device == "auto":
    return "cuda" if torch.cuda.is_available() else "cpu"
  if args.torch_device.startswith("cuda") and not torch.cuda.is_available():
    raise ValueError(f"--torch-device={args.torch_device!r} is invalid here: no CUDA device; allowed auto or cpu")
  return args.torch_device


def _jax_step(args, config, vit, hier):
  """Compiled package train step; returns (run_one, compile_s, box holding the state and last loss)."""
  import jax
  from jepa import step as step_lib
  sched = step_lib.make_schedules(config)
  tx = step_lib.make_optimizer(config, sched)
  state = step_lib.init_state(config, vit, hier, tx, jax.random.PRNGKey(0))
  fn = step_lib.make_train_step(config, vit, hier, sched, np.array([0.286]), np.array([0.353]))
  images = np.random.default_rng(0).integers(0, 256, (args.batch, vit.image_size, vit.image_size, 1), np.uint8)
  batch = {"images": jax.numpy.asarray(images)}
  t0 = time.perf_counter()
  compiled = jax.jit(fn, donate_argnums=0).lower(state, batch).compile()
  compile_s = time.perf_counter() - t0
  box = {"state": state, "loss": None}

  def run_one():
    box["state"], metrics = compiled(box["state"], batch)
    box["loss"] = metrics["train/loss"]
    jax.block_until_ready(box["loss"])

  return run_one, compile_s, box


def _torch_step(args, config, vit, sdpa: bool):
  """PyTorch I-JEPA step on pre-sampled masks (sampled outside the timed call)."""
  import jax
  import torch
  from jepa import bench_torch
  from jepa import masking
  device = _torch_device(args)
  torch.set_num_threads(len(os.sched_getaffinity(0)))  # = --threads (pinned before import)
  torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = args.tf32
  step = bench_torch.IJEPAStep(vit, sdpa=sdpa, device=device)
  images = np.random.default_rng(0).integers(0, 256, (args.batch, vit.image_size, vit.image_size, 1), np.uint8)
  sample = jax.jit(lambda k: masking.sample_masks(k, vit.grid, args.batch, config.mask))
  inputs = []
  for i in range(8):  # a pool of mask draws, cycled
    ctx_idx, _, tgt_idx, _ = map(np.asarray, sample(jax.random.PRNGKey(i)))
    inputs.append(bench_torch.to_torch_inputs(images, ctx_idx, tgt_idx, 0.286, 0.353, device))
  box = {"i": 0, "loss": None}

  def run_one():
    box["loss"] = step(*inputs[box["i"] % len(inputs)])  # .item() inside: synchronous
    box["i"] += 1

  name = torch.cuda.get_device_name(device) if device.startswith("cuda") else "cpu"
  return run_one, name, box


def worker(args) -> None:
  """One side (`--side jax|torch`) of one variant, driven over stdin/stdout by the parent.

  Prints `READY <json>` after setup (compilation included), then runs one step per `step` line,
  answering `T <seconds>`; on `quit` prints `DONE <json>` (final loss) and exits.
  """
  from common import benchmarking
  benchmarking.pin_threads(args.threads)  # before jax / torch start their thread pools
  import jax
  _jax_precision(args)
  config, vit, hier, _ = _setup(args)
  if args.side == "jax":
    run_one, compile_s, box = _jax_step(args, config, vit, hier)
    info = {"compile_s": compile_s, "device": str(jax.devices()[0].device_kind)}
  else:
    run_one, device, box = _torch_step(args, config, vit, args.sdpa)
    info = {"compile_s": 0.0, "device": device}
  print("READY " + json.dumps(info), flush=True)
  for line in sys.stdin:
    cmd = line.strip()
    if cmd == "step":
      t = time.perf_counter()
      run_one()
      print(f"T {time.perf_counter() - t!r}", flush=True)
    elif cmd == "profile" and args.side == "jax":
      jax.profiler.start_trace(args.profile)
      for _ in range(3):
        run_one()
      jax.profiler.stop_trace()
      print("T 0", flush=True)
    elif cmd == "quit":
      break
  print("DONE " + json.dumps({"loss": float(box["loss"])}), flush=True)


class _Side:
  """A worker process and its line protocol."""

  def __init__(self, cmd, env):
    self.err = tempfile.TemporaryFile(mode="w+")  # a file, not a pipe: a chatty worker cannot block
    self.proc = subprocess.Popen(cmd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.err,
                                 text=True, bufsize=1)

  def expect(self, tag: str) -> str:
    for line in self.proc.stdout:
      if line.startswith(tag + " "):
        return line[len(tag) + 1:].strip()
    self.proc.wait()
    self.err.seek(0)
    err = self.err.read().strip().splitlines()
    raise RuntimeError(err[-1] if err else f"worker exited with {self.proc.wait()}")

  def send(self, cmd: str) -> None:
    self.proc.stdin.write(cmd + "\n")
    self.proc.stdin.flush()

  def close(self) -> None:
    if self.proc.poll() is None:
      self.proc.kill()
    self.proc.wait()
    self.err.close()


def _variant_env(variant: str) -> dict[str, str]:
  from common import runtime
  env = dict(os.environ)
  env.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # JAX and torch share one GPU
  if variant == "untuned":  # glibc's and XLA's defaults, whatever this process was started with
    env[runtime.OPT_OUT] = "0"
    for key in runtime.MALLOC_ENV:
      env.pop(key, None)
    tunables = [t for t in env.pop("GLIBC_TUNABLES", "").split(":") if t and not t.startswith(runtime.HUGETLB)]
    if tunables:
      env["GLIBC_TUNABLES"] = ":".join(tunables)
    env["XLA_FLAGS"] = " ".join(f for f in env.get("XLA_FLAGS", "").split()
                                if not f.startswith(runtime.VECTOR_FLAG))
  else:
    env = runtime.host_env({**env, runtime.OPT_OUT: "1"})
    env["COMMON_HOST_TUNED"] = "1"  # already applied: the workers need not re-execute
  env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " " + XLA_VARIANTS[variant]).strip()
  return env


def _run_variant(args, variant: str, levels, threads: int) -> dict:
  """JAX and PyTorch workers of one variant, stepped alternately (J, T, T, J, ...)."""
  env = _variant_env(variant)
  base = [sys.executable, "-m", "jepa.bench", "--worker", "--config", args.config, "--batch", str(args.batch),
          "--levels", *map(str, levels), "--torch-device", args.torch_device, "--threads", str(threads)]
  base += ["--tf32"] * args.tf32 + ["--sdpa"] * args.sdpa
  if args.profile:
    base += ["--profile", args.profile]
  names = ["jax"] + ([] if args.no_torch else ["torch"])
  sides = {}
  try:
    info = {}
    for name in names:  # set up one after the other: compilation does not overlap the other side
      sides[name] = _Side(base + ["--side", name], env)
      info[name] = json.loads(sides[name].expect("READY"))
    times = {name: [] for name in names}
    for i in range(args.warmup + args.steps):
      for name in (names if i % 2 == 0 else names[::-1]):
        sides[name].send("step")
        t = float(sides[name].expect("T"))
        if i >= args.warmup:
          times[name].append(t)
    if args.profile and variant == "default":
      sides["jax"].send("profile")
      sides["jax"].expect("T")
    done = {}
    for name in names:
      sides[name].send("quit")
      done[name] = json.loads(sides[name].expect("DONE"))
  except RuntimeError as e:
    return {"error": str(e)}
  finally:
    for side in sides.values():
      side.close()
  res = {"compile_s": info["jax"]["compile_s"], "device": info["jax"]["device"], "jax_step_times": times["jax"],
         "jax_loss": done["jax"]["loss"], "xla_flags": env["XLA_FLAGS"],
         "glibc_tunables": env.get("GLIBC_TUNABLES", "")}
  if "torch" in names:
    res.update({"torch_device": info["torch"]["device"], "torch_step_times": times["torch"],
                "torch_loss": done["torch"]["loss"]})
  return res


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--config", default="vit_tiny", help="variant of configs/jepa.py (model + masks)")
  p.add_argument("--batch", type=int, default=64)
  p.add_argument("--steps", type=int, default=20, help="timed steps per side and variant (median reported)")
  p.add_argument("--warmup", type=int, default=3)
  p.add_argument("--levels", type=float, nargs="+", default=[1.0], help="hierarchy weights of the JAX step")
  p.add_argument("--variants", default="default,untuned", help=f"worker variants, of {list(XLA_VARIANTS)}")
  p.add_argument("--hjepa", action="store_true", help="also time the 3-level H-JEPA step (default variant)")
  p.add_argument("--sdpa", action="store_true", help="torch with scaled_dot_product_attention")
  p.add_argument("--torch-device", default="auto", help="auto (cuda when available, else cpu) | cpu | cuda[:N]")
  p.add_argument("--tf32", action="store_true", help="allow TF32 matmuls on both sides (GPU); default strict fp32")
  p.add_argument("--no-torch", action="store_true", help="time the JAX step only")
  p.add_argument("--profile", default="", help="write a JAX profiler trace of the default variant here")
  p.add_argument("--threads", default="1,2", help="CPU thread counts, each run with both sides pinned to "
                 "the same cores (worker: one count)")
  p.add_argument("--max-load", type=float, default=benchmarking.IDLE_LOAD,
                 help="refuse to write the result if the 1-minute load average exceeds this during the run")
  p.add_argument("--out", default="bench_results/jepa_bench.json")
  p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
  p.add_argument("--side", choices=("jax", "torch"), default="jax", help=argparse.SUPPRESS)
  args = p.parse_args(argv)
  if args.worker:
    args.threads = int(args.threads)
    worker(args)
    return
  thread_counts = [int(t) for t in args.threads.split(",") if t]
  unknown = [v for v in args.variants.split(",") if v and v not in XLA_VARIANTS]
  if unknown:
    raise SystemExit(f"--variants={args.variants!r} is invalid: {unknown} unknown; allowed {list(XLA_VARIANTS)}")

  _, vit, _, budget = _setup(args)
  print(f"jepa.bench: {args.config} ViT {vit.width}/{vit.depth}/{vit.num_heads}, predictor "
        f"{vit.predictor_width}/{vit.predictor_depth}, {vit.image_size} px / patch {vit.patch_size}, batch "
        f"{args.batch}, K_ctx={budget.context_tokens}, K_tgt={budget.max_target_tokens} x {budget.num_blocks}; "
        f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}", flush=True)
  rows = []
  load = benchmarking.LoadMonitor()
  runs = [(v, args.levels, v) for v in args.variants.split(",") if v]
  if args.hjepa:
    runs.append(("hjepa 3 levels [default]", [1.0, 0.5, 0.25], "default"))
  runs = [(f"{name} [{n} thr]", levels, variant, n) for n in thread_counts for name, levels, variant in runs]
  for name, levels, variant, threads in runs:
    res = _run_variant(args, variant, levels, threads)
    load.sample()
    if "error" in res:
      print(f"  {name}: failed: {res['error']}", flush=True)
      rows.append({"name": name, "error": res["error"]})
      continue
    jax_med = statistics.median(res["jax_step_times"])
    row = {"name": name, "variant": variant, "threads": threads, "levels": levels, "device": res["device"],
           "xla_flags": res["xla_flags"], "glibc_tunables": res["glibc_tunables"], "compile_s": res["compile_s"],
           "jax_median_step_s": jax_med, "jax_images_per_s": args.batch / jax_med, "jax_loss": res["jax_loss"],
           "jax_step_times": res["jax_step_times"]}
    line = (f"  {name:<26} JAX {args.batch / jax_med:8.1f} img/s ({jax_med * 1e3:6.1f} ms, "
            f"compile {res['compile_s']:.1f} s)")
    if "torch_step_times" in res:
      torch_med = statistics.median(res["torch_step_times"])
      row.update({"torch_device": res["torch_device"], "torch_median_step_s": torch_med,
                  "torch_images_per_s": args.batch / torch_med, "torch_loss": res["torch_loss"],
                  "torch_step_times": res["torch_step_times"], "ratio_vs_torch": torch_med / jax_med})
      line += f" | torch {args.batch / torch_med:8.1f} img/s ({torch_med * 1e3:6.1f} ms) | {torch_med / jax_med:.2f}x"
    print(line, flush=True)
    rows.append(row)
  print("\n| variant | JAX img/s | JAX ms/step | torch img/s (alternating) | torch ms/step | JAX / torch | compile s |")
  print("|---|---|---|---|---|---|---|")
  for r in rows:
    if "error" in r:
      print(f"| {r['name']} | failed: {r['error']} |||||")
    elif "ratio_vs_torch" in r:
      print(f"| {r['name']} | {r['jax_images_per_s']:.1f} | {r['jax_median_step_s'] * 1e3:.1f} | "
            f"{r['torch_images_per_s']:.1f} | {r['torch_median_step_s'] * 1e3:.1f} | {r['ratio_vs_torch']:.2f}x | "
            f"{r['compile_s']:.1f} |")
    else:
      print(f"| {r['name']} | {r['jax_images_per_s']:.1f} | {r['jax_median_step_s'] * 1e3:.1f} | | | | "
            f"{r['compile_s']:.1f} |")
  import jax
  record = {"config": args.config, "batch": args.batch, "steps": args.steps, "warmup": args.warmup,
            "cpus": os.cpu_count(), "tf32": args.tf32, **load.record(),
            "jax": jax.__version__, "machine": platform.processor() or platform.machine(),
            "K_ctx": budget.context_tokens, "K_tgt": budget.max_target_tokens, "rows": rows}
  try:
    import torch
    record["torch"] = torch.__version__
  except ImportError:
    pass
  benchmarking.refuse_if_loaded(load, args.out, args.max_load)
  os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
  with open(args.out, "w") as f:
    json.dump(record, f, indent=1)
  print(f"wrote {args.out}")


if __name__ == "__main__":
  main()
