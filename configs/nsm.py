"""NSM: hierarchical R-GCN with WHY/WHAT cycle consistency on three reasoning domains.

Run (from the repository root):
  python -m nsm.main --config configs/nsm.py:quick --config.domain=causal --workdir runs/nsm_causal
  python -m nsm.main --config configs/nsm.py:quick --config.domain=planning --workdir runs/nsm_planning
  python -m nsm.main --config configs/nsm.py:quick --config.domain=kg --workdir runs/nsm_kg
Legacy label rules (parity with the original generators):
  python -m nsm.main --config configs/nsm.py:quick --config.domain=planning \
      --config.data.mode=legacy --workdir runs/nsm_planning_legacy
Variants: "default" (= "full"), "quick" (the README numbers), "tiny" (tests).
"""
import ml_collections


def get_config(arg: str = "default") -> ml_collections.ConfigDict:
  """Returns the NSM config for variant `arg` in {default, full, quick, tiny}."""
  config = ml_collections.ConfigDict()
  config.wandb = ml_collections.ConfigDict()  # Weights & Biases: the same fields in every package.
  config.wandb.enabled = False  # Also log every scalar to W&B (needs pip install -e ".[wandb]").
  config.wandb.project = "k7-research"  # W&B project.
  config.wandb.entity = ""  # W&B team or user ("" = your default entity).
  config.wandb.name = ""  # Run name ("" = the workdir's name); a resumed job continues its W&B run.
  config.domain = "causal"  # reasoning domain: causal | planning | kg | chains
  config.seed = 0  # seeds data generation, split, init and dropout

  config.data = ml_collections.ConfigDict()
  config.data.mode = "v2"  # v2 (leak-free labels) | legacy (the original generators' label rules)
  config.data.num_graphs = 2000  # graphs generated per domain
  config.data.split = (0.70, 0.15, 0.15)  # train / val / test fractions (sum to 1)
  config.data.feature_dim = 64  # node feature width (input of the first R-GCN layer)
  config.data.inverse_edges = True  # add a reversed copy of every edge with its own relation type
  # Reasoning depth (v2; 0 = the domain default): causal: longest treatment->symptom mechanism
  # chain (default 12); kg: city->country location hops (default 3); chains: longest training
  # path k (default 3); planning: unused (must stay 0).
  config.data.hops = 0
  config.data.test_hops = 10  # chains: length-generalisation test sets for k = 1..test_hops

  config.model = ml_collections.ConfigDict()
  # hier: soft-assignment hierarchy with an L3-only head (nsm/model.py); legacy_v2: the
  # session-2 top-k/coupling model whose head also reads L1 (nsm/legacy.py).
  config.model.kind = "hier"
  config.model.hidden = 64  # node feature width at every level
  config.model.num_bases = 8  # R-GCN basis matrices (capped at the number of relations)
  config.model.aggregation = "pyg_mean"  # pyg_mean (per-relation mean) | nsm_mean (original global mean)
  # Sparse R-GCN kernel, the same function either way (nsm/layers.py RGCNLayer; speeds in
  # nsm/README.md, benchmark): grouped (edges sorted into one-relation tiles, a matmul per tile;
  # faster everywhere it was benchmarked) | table (node x relation table, gathered per edge; the
  # kernel of the committed session 3-5 experiment results).
  config.model.rgcn_impl = "grouped"
  config.model.rgcn_layers = 2  # R-GCN layers per level (L1 and L2)
  config.model.clusters = (8, 4)  # hier: L2 and L3 nodes per graph (soft-assignment targets)
  config.model.coupling_layers = 3  # legacy_v2: affine coupling layers per WHY/WHAT stack
  config.model.coupling_hidden = 64  # legacy_v2: width of the coupling s/t MLPs (2 hidden layers)
  config.model.pool_ratio = 0.5  # legacy_v2: top-k keeps ceil(ratio * n_i) nodes per graph; in (0, 1]
  config.model.upper_relations = "keep"  # legacy_v2: keep (pooled edges keep types) | single (type 0)
  config.model.readout = "mean_max"  # graph readout over top-level nodes: mean | mean_max
  # legacy_v2 only: all = head on the sum of the L1, L2 and L3 readouts (L1 bypasses the
  # hierarchy); l3 = pooled L3 nodes only. hier always reads L3 only.
  config.model.readout_levels = "all"
  config.model.size_features = True  # append log1p(#nodes), log1p(#edges) of the L1 graph to the readout
  config.model.dropout = 0.1  # dropout rate after each R-GCN layer and in the head
  config.model.num_classes = 2  # graph classes

  config.loss = ml_collections.ConfigDict()
  config.loss.cycle_weight = 0.01  # total = task CE + cycle_weight * cycle loss
  # Weights of the L1' (vs input features, 1 - R^2) and L2' (vs WHY's L2 nodes) terms.
  config.loss.cycle_level_weights = (0.7, 0.3)

  config.optim = ml_collections.ConfigDict()
  config.optim.learning_rate = 1e-3  # peak Adam(W) learning rate
  config.optim.warmup_fraction = 0.05  # fraction of steps of linear warmup (then cosine decay to 0)
  config.optim.weight_decay = 1e-5  # decoupled weight decay
  config.optim.grad_clip = 1.0  # global-norm gradient clipping

  config.train = ml_collections.ConfigDict()
  config.train.batch_size = 64  # graphs per batch
  config.train.epochs = 100  # passes over the training split (steps derived in train.py)
  config.train.log_every = 20  # steps between train metric logs
  config.train.eval_every_epochs = 5  # epochs between validation passes
  config.train.plot_every_evals = 1  # validation passes between dashboard redraws
  config.train.save_every_epochs = 10  # epochs between checkpoints
  config.train.baselines = True  # fit majority / size / edge-type / flat R-GCN baselines on the same split
  config.train.flat_epochs = -1  # flat R-GCN baseline epochs; -1 = same as train.epochs, 0 = skip it
  config.train.flat_depth = 0  # flat R-GCN layers (width parameter-matched to NSM); 0 = NSM's depth

  if arg in ("default", "full"):
    pass
  elif arg == "quick":
    config.train.epochs = 20
    config.train.eval_every_epochs = 2
    config.train.save_every_epochs = 4
  elif arg == "tiny":
    config.data.num_graphs = 240
    config.train.batch_size = 32
    config.train.epochs = 6
    config.train.log_every = 5
    config.train.eval_every_epochs = 3
    config.train.save_every_epochs = 3
  else:
    raise ValueError(f"configs/nsm.py: variant {arg!r} is invalid: allowed default, full, quick, tiny")
  return config
