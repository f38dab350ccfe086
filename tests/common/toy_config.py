"""Config of the toy MLP regression used by the runtime tests.

python tests/common/toy_train.py --config tests/common/toy_config.py --workdir /tmp/toy
"""
import ml_collections


def get_config(arg: str = "default") -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.seed = 0                    # base PRNG seed
  c.num_steps = 40              # optimizer steps
  c.batch_size = 16             # examples per step (global)
  c.learning_rate = 5e-2        # peak Adam learning rate
  c.warmup_steps = 5            # linear warmup steps
  c.schedule_steps = 40         # length of the cosine LR schedule (independent of num_steps)
  c.hidden = 32                 # MLP width
  c.log_every = 5               # steps between metric writes
  c.eval_every = 10             # steps between evaluations
  c.step_sleep = 0.0            # seconds slept per step (to make crash tests hit mid-run)
  c.device_work = 0             # 384x384 matmuls per step on the device: slow steps that queue
  c.nan_at_step = -1            # inject NaN into the loss from this step on (NaN-guard test); -1 off
  c.checkpoint = ml_collections.ConfigDict()
  c.checkpoint.save_every = 10  # steps between checkpoints
  c.checkpoint.keep_latest = 2  # newest checkpoints kept
  c.checkpoint.keep_best = 1    # best checkpoints kept, by eval/loss (min)
  c.checkpoint.async_save = True
  c.distributed = ml_collections.ConfigDict()
  c.distributed.enabled = False           # call jax.distributed.initialize() (multi-host)
  c.distributed.coordinator_address = ""  # "" = from the cluster environment
  c.distributed.num_processes = 1
  c.distributed.process_id = 0
  variants = {"default": {}, "long": {"num_steps": 120, "schedule_steps": 120, "step_sleep": 0.02}}
  if arg not in variants:
    raise ValueError(f"unknown variant {arg!r}: allowed {sorted(variants)}")
  c.update(variants[arg])
  return c
