r"""H-JEPA / I-JEPA self-supervised ViT on Fashion-MNIST (or CIFAR-style / image folders).

Run (variants: quick, long, tiny, ijepa, default, vit_tiny, vit_base):

  python -m jepa.main --config configs/jepa.py:quick --workdir runs/jepa

Overrides: --config.train.num_steps=2000 --config.hierarchy.weights="(1.0,)".
"""
import ml_collections


def get_config(arg: str = "default") -> ml_collections.ConfigDict:
  """Returns the config for variant `arg`."""
  c = ml_collections.ConfigDict()
  c.wandb = ml_collections.ConfigDict()  # Weights & Biases: the same fields in every package.
  c.wandb.enabled = False  # Also log every scalar to W&B (needs pip install -e ".[wandb]").
  c.wandb.project = "k7-research"  # W&B project.
  c.wandb.entity = ""  # W&B team or user ("" = your default entity).
  c.wandb.name = ""  # Run name ("" = the workdir's name); a resumed job continues its W&B run.
  c.seed = 0  # PRNG seed for init, masks, augmentation and data order.

  c.data = d = ml_collections.ConfigDict()
  d.name = "fashion_mnist"  # fashion_mnist | cifar | image_folder.
  d.path = ""  # Dataset directory; "" = /usr/share/datasets/fashion-mnist (Debian dataset-fashion-mnist).
  d.image_size = 28  # Side of the square model input, pixels (images are resized to it).
  d.crop_scale = (0.3, 1.0)  # Random-resized-crop area fraction range (I-JEPA uses (0.3, 1.0)).
  d.crop_ratio = (0.75, 4.0 / 3.0)  # Random-resized-crop aspect-ratio range (width / height).
  d.hflip = True  # Random horizontal flip during pre-training.
  d.train_limit = 0  # Use only the first N training images (0 = all); for tiny tests.
  d.unlabelled_path = ""  # image_folder only: pre-train on every image below this folder ("" = the train split).
  d.decode_threads = 8  # image_folder only: threads decoding and augmenting JPEG/PNG files per host.

  c.model = m = ml_collections.ConfigDict()
  m.patch_size = 4  # Patch side, pixels; image_size must be divisible by it.
  m.width = 64  # Encoder embedding width D.
  m.depth = 4  # Encoder transformer blocks.
  m.num_heads = 4  # Encoder attention heads.
  m.mlp_ratio = 4.0  # MLP hidden width / D.
  m.predictor_width = 64  # Predictor width (I-JEPA: 384, the narrow bottleneck).
  m.predictor_depth = 2  # Predictor transformer blocks (I-JEPA: 6 for ViT-B).
  m.predictor_heads = 4  # Predictor attention heads.
  m.dtype = "float32"  # Compute dtype: float32 | bfloat16 (parameters stay float32).

  c.mask = k = ml_collections.ConfigDict()
  k.num_target_blocks = 4  # Target blocks per image (I-JEPA: 4).
  k.target_scale = (0.15, 0.2)  # Target block area / image area range.
  k.target_aspect = (0.75, 1.5)  # Target block aspect (rows / cols) range.
  k.context_scale = (0.85, 1.0)  # Context block area / image area range (targets then removed).
  k.context_aspect = (1.0, 1.0)  # Context block aspect range.
  k.max_target_tokens = 0  # Static target-token budget per block (0 = exact max from the scale/aspect bounds).
  k.context_tokens = 0  # Static context-token budget (0 = expected context size); extra tokens are subsampled at random.

  c.hierarchy = h = ml_collections.ConfigDict()
  h.kind = "pool"  # pool: level l pools 2^l x 2^l inside each target block; layers: intermediate target-encoder layers.
  h.weights = (1.0, 0.5, 0.25)  # Loss weight per level; its length is the number of levels ((1.0,) = flat I-JEPA).
  h.layers = (0, 0, 0)  # kind=layers only: target-encoder block (1-based) per level; 0 = the last block.

  c.loss = ml_collections.ConfigDict()
  c.loss.kind = "smooth_l1"  # smooth_l1 (I-JEPA code, beta 1) | l2 (squared error, the paper's text).

  c.optim = o = ml_collections.ConfigDict()
  o.learning_rate = 1e-3  # Peak learning rate after warmup.
  o.end_learning_rate = 1e-6  # Final learning rate of the cosine decay.
  o.warmup_fraction = 0.1  # Linear-warmup steps as a fraction of optimizer steps.
  o.weight_decay = 0.04  # Initial AdamW weight decay (bias and norm parameters excluded).
  o.end_weight_decay = 0.4  # Final weight decay of the cosine weight-decay schedule.
  o.b1 = 0.9  # AdamW beta1.
  o.b2 = 0.999  # AdamW beta2.
  o.grad_clip = 0.0  # Global-norm gradient clipping threshold (0 = off, as in I-JEPA).
  o.grad_accum_steps = 1  # Micro-batches per optimizer step (batch_size must be divisible by it).

  c.ema = ml_collections.ConfigDict()
  c.ema.start = 0.996  # Target-encoder EMA momentum at optimizer step 0.
  c.ema.end = 1.0  # EMA momentum at the last optimizer step.
  c.ema.schedule = "linear"  # linear (I-JEPA: m0 + (1 - m0) t / T) | cosine (BYOL-style ramp).

  c.train = t = ml_collections.ConfigDict()
  t.batch_size = 128  # Images per optimizer step (all micro-batches together).
  t.num_steps = 2000  # Optimizer steps.
  t.log_every = 50  # Steps between scalar logs.
  t.eval_every = 500  # Steps between k-NN / collapse evaluations (0 = only at the end).
  t.save_every = 500  # Steps between checkpoints.
  t.keep_best = 2  # Best checkpoints kept (by train.best_metric) besides the latest.
  t.best_metric = "eval/knn_accuracy"  # Metric ranking the best checkpoints.
  t.best_mode = "max"  # max | min for best_metric.
  t.plot_every = 0  # Steps between dashboard plots (0 = only at the end).
  t.tensorboard = True  # Write TensorBoard events to <workdir>/tb.

  c.eval = e = ml_collections.ConfigDict()
  e.batch_size = 500  # Images per feature-extraction batch.
  e.train_samples = 10000  # Labelled train images for the probes (fixed random subset; 0 = all).
  e.test_samples = 0  # Test images for the probes (0 = all).
  e.during_train_samples = 2000  # Bank and query size of the k-NN run at each periodic eval.
  e.knn_k = 20  # Neighbours of the k-NN classifier.
  e.knn_temperature = 0.07  # Temperature of the exp(similarity / T) vote weights.
  e.probe_l2 = 1e-3  # L2 penalty of the multinomial logistic-regression probe.
  e.probe_iterations = 300  # L-BFGS iterations of the probe (fixed budget).
  e.erank_samples = 2000  # Rows for the effective rank (>= 2000).
  e.erank_floor = 2.0  # Warn loudly when a level's centred effective rank falls below this.
  e.erank_drop = 0.3  # Warn when a level's effective rank falls by more than this fraction of its best.
  e.std_drop = 0.1  # Warn when a level's mean per-dimension std falls below this fraction of its best.
  e.probe_during_train = False  # Also run the linear probe (final protocol) at every periodic eval.
  e.probe_features = "last"  # Probe features: last (mean-pooled final tokens) | last4 (concat of the last 4 blocks).

  if arg == "default":
    pass
  elif arg == "quick":  # <= 10 minutes on a 2-core CPU.
    t.num_steps = 800
    t.eval_every = 400
    t.save_every = 400
    t.log_every = 50
    o.b2 = 0.95
    o.grad_clip = 1.0
    o.weight_decay = 0.05
    o.end_weight_decay = 0.05
  elif arg == "long":  # The quick recipe for 8,000 steps (~2 CPU-hours on 2 cores), probes along the way.
    t.num_steps = 8000
    t.eval_every = 1000
    t.save_every = 1000
    t.log_every = 100
    o.b2 = 0.95
    o.grad_clip = 1.0
    o.weight_decay = 0.05
    o.end_weight_decay = 0.05
    e.probe_during_train = True
  elif arg == "ijepa":  # The flat I-JEPA: one level.
    h.weights = (1.0,)
  elif arg == "tiny":  # Seconds; unit tests.
    d.train_limit = 512
    m.width = 32
    m.depth = 2
    m.num_heads = 2
    m.predictor_width = 32
    m.predictor_depth = 1
    m.predictor_heads = 2
    t.batch_size = 32
    t.num_steps = 6
    t.log_every = 2
    t.eval_every = 3
    t.save_every = 3
    e.batch_size = 256
    e.train_samples = 512
    e.test_samples = 256
    e.during_train_samples = 256
    e.probe_iterations = 50
    e.erank_samples = 2000
  elif arg == "vit_tiny":  # ViT-Tiny (192/12/3), predictor 192/6, as in the benchmark.
    m.width, m.depth, m.num_heads = 192, 12, 3
    m.predictor_width, m.predictor_depth, m.predictor_heads = 192, 6, 3
  elif arg == "vit_base":  # ViT-B/16 at 224 px, predictor 384/6 (I-JEPA).
    d.name = "image_folder"
    d.image_size = 224
    m.patch_size = 16
    m.width, m.depth, m.num_heads = 768, 12, 12
    m.predictor_width, m.predictor_depth, m.predictor_heads = 384, 6, 12
    m.dtype = "bfloat16"
    t.batch_size = 2048
    t.num_steps = 300 * 625
    o.warmup_fraction = 40 / 300
  else:
    raise ValueError(f"config variant {arg!r} is invalid: allowed default, quick, long, ijepa, tiny, vit_tiny, vit_base")
  return c
