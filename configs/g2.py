"""g2 learning: torsion-free G2-structures on T^7 (default) or Bryant-Salamon profiles.

Run (variants: default = GPU scale, quick = CPU (cost in CPU-seconds: g2/README.md), quick_planted =
quick on the planted low-frequency background (sanity check only), tiny = tests, bryant_salamon,
bryant_salamon_quick, orbifold_quick = Joyce's T⁷/Γ on CPU, orbifold_tiny = tests):

  python -m g2.main --config configs/g2.py:quick --workdir runs/g2
  python -m g2.main --config configs/g2.py:quick_planted --workdir runs/g2_planted
  python -m g2.main --config configs/g2.py --workdir runs/g2_full
  python -m g2.main --config configs/g2.py:bryant_salamon --workdir runs/g2_bs
  python -m g2.main --config configs/g2.py:bryant_salamon_quick --workdir runs/g2_bs_quick  # ~4 min
  python -m g2.main --config configs/g2.py:orbifold_quick --workdir runs/orbifold_quick
  python -m g2.main --config configs/g2.py:joyce_quick --workdir runs/joyce_quick  # CPU, minutes
  python -m g2.main --config configs/g2.py:joyce --workdir runs/joyce  # GPU scale (stage 4 sizes)
"""
import ml_collections

# Column order of the curriculum weight table (reference §1.4 of the K7 v1.0 notebook).
LOSS_TERMS = ("closure", "coclosure", "volume", "gram_h2", "gram_h3", "boundary", "neck_smooth",
              "harm_pen", "calibration")

VARIANTS = ("default", "quick", "quick_planted", "tiny", "bryant_salamon", "bryant_salamon_quick",
            "orbifold_quick", "orbifold_tiny", "joyce_quick", "joyce")


def get_config(arg: str = "default") -> ml_collections.ConfigDict:
  """Returns the config of a variant (one of VARIANTS)."""
  variant = arg or "default"
  if variant not in VARIANTS:
    raise ValueError(f"config variant {variant!r} is invalid: allowed one of {VARIANTS}")
  c = ml_collections.ConfigDict()
  c.wandb = ml_collections.ConfigDict()  # Weights & Biases: the same fields in every package.
  c.wandb.enabled = False  # Also log every scalar to W&B (needs pip install -e ".[wandb]").
  c.wandb.project = "k7-research"  # W&B project.
  c.wandb.entity = ""  # W&B team or user ("" = your default entity).
  c.wandb.name = ""  # Run name ("" = the workdir's name); a resumed job continues its W&B run.
  c.variant = variant  # name of the variant that built this config (recorded in config.json)

  c.problem = ml_collections.ConfigDict()
  # "torus" (T^7, phi = phi_bar + d eta), "bryant_salamon" (1-D profiles), "orbifold" (Joyce's
  # T^7/Gamma: the torus problem with every form Gamma-averaged, g2/orbifold.py) or "joyce" (issue
  # 16 stages 1-4 at one resolution scale, g2/joyce_pipeline.py; reads only config.joyce)
  c.problem.name = "torus"
  # T^7 background phi_bar (g2/problems.py): "diffeo_high_frequency": F^* phi0 + d beta with F a
  # periodic diffeomorphism and beta a non-trigonometric 2-form, all modes |k|_1 >= background_min_l1
  # (above the eta net's linear skip: the answer cannot be read off linearly); "planted_low_frequency":
  # phi0 + d beta with beta's modes inside the skip's span (sanity check only).
  c.problem.torus_background = "diffeo_high_frequency"
  c.problem.background_amplitude = 0.1  # amplitude of the periodic 2-form beta (planted: sin modes)
  c.problem.background_modes = 6  # number of modes (frequency, component) in beta
  c.problem.background_seed = 7  # seed of beta's and F's modes (fixed: part of the problem, not the run)
  c.problem.background_min_l1 = 3  # diffeo_high_frequency: modes have |k|_1 in {this, this + 1}
  c.problem.diffeo_amplitude = 0.02  # diffeo_high_frequency: F(x) = x + this * sum_m c_m sin(k_m.x + t_m) e_a
  c.problem.diffeo_modes = 6  # diffeo_high_frequency: number of modes of F
  c.problem.calibration_plane = (0, 1, 2)  # coordinate axes spanning the associative 3-plane (e^123 of phi0)
  c.problem.bs_a = 1.0  # Bryant-Salamon: radius a of the S^3 bolt (F = 1 - a^3/r^3)
  c.problem.bs_r_min = 1.2  # Bryant-Salamon: inner radius, where boundary data B, C are imposed
  c.problem.bs_r_max = 4.0  # Bryant-Salamon: outer radius of the sampled interval
  c.problem.bs_angle_margin = 0.3  # Bryant-Salamon: keep Euler angles theta in [m, pi - m] (chart)
  # Bryant-Salamon training points: k > 0 fixed generic angle tuples (the torsion depends on r
  # only), 0: random angles for every point. Evaluation always uses random angles.
  c.problem.bs_angle_sets = 0
  c.problem.bs_angle_seed = 11  # Bryant-Salamon: seed of the fixed angle tuples (part of the problem)
  # Bryant-Salamon training radii: "uniform" | "chebyshev" (arcsine density, dense at both ends).
  c.problem.bs_radial_sampling = "uniform"
  # Bryant-Salamon closure/coclosure losses: "volume" (normalised torsion; the volume form weighs
  # r = 4 ~ 10^3 times more than r = 1.2) | "radial" (plain mean over the sampled radii).
  c.problem.bs_loss_weighting = "volume"

  c.model = ml_collections.ConfigDict()
  c.model.max_frequency = 2  # eta/harmonic nets: integer Fourier frequencies k with |k|_1 <= this
  c.model.phi_width = 384  # hidden width of the eta (phi correction) MLP
  c.model.phi_depth = 3  # hidden layers of the eta MLP
  c.model.harmonic_width = 256  # hidden width of the multi-head harmonic-forms MLP
  c.model.harmonic_depth = 2  # hidden layers of the harmonic-forms MLP
  c.model.n_h2 = 21  # requested harmonic 2-forms (heads); the original asked for 21
  c.model.n_h3 = 77  # requested harmonic 3-forms (heads); the original asked for 77 (T^7 has 35)
  # Bryant-Salamon profiles (B, C) = (B0, C0) exp(u) with u(r_min) = 0 (boundary data exact):
  # "mlp": u = (r - r_min) MLP(r); "chebyshev": u = integral from r_min of a Chebyshev series.
  c.model.profile_kind = "mlp"
  c.model.profile_width = 64  # Bryant-Salamon: hidden width of the profile MLP
  c.model.profile_depth = 3  # Bryant-Salamon: hidden layers of the profile MLP
  c.model.profile_degree = 24  # Bryant-Salamon: Chebyshev terms of u' (profile_kind chebyshev)

  c.curriculum = ml_collections.ConfigDict()
  # Labels of what each phase does for the chosen problem (T^7 here; Bryant-Salamon below): the
  # volume term anchors the scale first, torsion weights then grow, the sample grid refines
  # (8 -> 10 -> 12), the harmonic heads' weights peak, calibration is switched on last.
  c.curriculum.phase_names = ("volume_anchored_start", "torsion_descent", "grid_10_refinement",
                              "harmonic_head_extraction", "grid_12_calibration")
  c.curriculum.phase_ends = (2 / 15, 5 / 15, 8 / 15, 10 / 15, 1.0)  # phase end, fraction of steps
  c.curriculum.grid_n = (8, 8, 10, 10, 12)  # per phase: periodic grid n^7 the grid half of a batch is drawn from
  # Per-phase loss weights (one tuple per LOSS_TERMS column); defaults = the original's table.
  c.curriculum.closure = (0.5, 1.0, 2.0, 3.0, 5.0)  # |d phi|^2 (volume-normalised)
  c.curriculum.coclosure = (0.5, 1.0, 2.0, 3.0, 5.0)  # |d psi|^2 (volume-normalised)
  c.curriculum.volume = (2.0, 0.5, 0.2, 0.1, 0.05)  # (log mean sqrt det g)^2: fixes the scale
  c.curriculum.gram_h2 = (1.0, 1.5, 3.0, 5.0, 5.0)  # |G - I|^2 of the L2(g) Gram of 2-form heads
  c.curriculum.gram_h3 = (0.5, 1.0, 2.0, 3.0, 4.0)  # |G - I|^2 of the L2(g) Gram of 3-form heads
  c.curriculum.boundary = (0.5, 1.5, 2.0, 1.5, 1.0)  # boundary data (bryant_salamon; none on T^7)
  c.curriculum.neck_smooth = (0.1, 0.2, 0.3, 0.2, 0.1)  # no neck in these problems: must stay unused
  c.curriculum.harm_pen = (0.01, 0.02, 0.05, 0.1, 0.2)  # ||dh||^2 + ||d*h||^2 of harmonic heads
  c.curriculum.calibration = (0.0, 0.001, 0.002, 0.005, 0.01)  # (phi|_P / vol_P - 1)^2

  c.adaptive = ml_collections.ConfigDict()
  c.adaptive.mode = "bounded"  # "bounded" (plateau test on log-loss, capped) | "legacy" | "off"
  c.adaptive.terms = ("closure", "coclosure")  # loss terms whose weights adapt
  c.adaptive.start_step = 500  # first step at which a weight may change
  c.adaptive.interval = 100  # steps per plateau window
  c.adaptive.factor = 1.5  # multiplier applied on a plateau
  c.adaptive.plateau_tol = 0.01  # plateau: mean log10 loss improved by less than this per window
  c.adaptive.cap = 10.0  # maximal multiplier of a phase weight (bounded mode)
  c.adaptive.legacy_var_threshold = 1e-4  # legacy mode: boost when var(raw loss over window) < this

  c.optim = ml_collections.ConfigDict()
  c.optim.learning_rate = 1e-3  # AdamW peak learning rate (original 1e-4)
  c.optim.end_learning_rate = 1e-7  # learning rate at the last step (cosine decay)
  c.optim.warmup_steps = 500  # linear warmup steps
  c.optim.weight_decay = 1e-4  # AdamW decoupled weight decay
  c.optim.grad_clip = 1.0  # global-norm gradient clipping

  c.train = ml_collections.ConfigDict()
  c.train.num_steps = 15000  # optimizer steps (the original's epochs)
  c.train.batch_size = 2048  # sample points per step for the phi losses
  c.train.harmonic_batch_size = 512  # sample points per step for the harmonic-head losses
  c.train.train_harmonic = True  # train the harmonic heads jointly (weights gram_*, harm_pen)
  c.train.seed = 42  # PRNG seed of parameters and sampling
  c.train.log_every = 100  # steps between metric records
  c.train.eval_every = 500  # steps between evaluations (held-out torsion, positivity)
  c.train.eval_batch_size = 2048  # held-out sample points per evaluation
  c.train.checkpoint_every = 500  # steps between checkpoints
  c.train.keep_best = 5  # checkpoints kept by lowest normalised torsion (plus the latest)
  c.train.plot_every = 1000  # steps between dashboard redraws (0: only at the end)
  c.train.positivity_floor = 1e-3  # min eig(g)/det(g)^(1/7) below this flags phi as degenerate
  c.train.float64 = False  # run the whole job in float64 (scoped jax.enable_x64)
  # The last steps are L-BFGS iterations on one fixed batch (must lie in the last curriculum
  # phase; adaptive weights frozen); 0: Adam only.
  c.train.lbfgs_steps = 0
  c.train.lbfgs_memory = 10  # L-BFGS history size

  c.harmonic = ml_collections.ConfigDict()
  c.harmonic.n_points = 4096  # Monte Carlo points of the Rayleigh-Ritz matrices of the learned heads
  c.harmonic.grid_n = 4  # tensor grid n^7 for the trig trial space (n >= 3 exact when flat)
  # Trial space {1, cos k.x, sin k.x} x constant k-forms: "metric" ranks k by the Fourier power of
  # g_phi on the grid (harmonic forms first deviate from constants there), "axes" uses j e_m.
  c.harmonic.trial_frequencies = "metric"
  c.harmonic.trial_sizes = (0, 4, 8, 16)  # ladder of nested trial spaces (number of frequencies); the last gives the estimate
  c.harmonic.trial_max_frequency = 1  # "axes" trial space: frequencies j e_m, j <= this
  c.harmonic.trial_directions = 7  # "axes" trial space: along this many coordinate axes
  # Spectral gap (harmonic.gap_count): ratio >= this above the round-off floor, lower side below
  # (first non-zero scalar Laplacian eigenvalue) / this.
  c.harmonic.gap_ratio = 10.0
  c.harmonic.chunk = 256  # points per chunk when assembling the matrices

  c.yukawa = ml_collections.ConfigDict()
  c.yukawa.mc_samples = 20000  # Monte Carlo points
  c.yukawa.grid_ns = (3, 4, 5, 6)  # tensor grids n^7 (periodic trapezoid); the finest is reported, all show convergence
  c.yukawa.chunk = 2048  # points per chunk
  c.yukawa.tucker_rank = (3, 3, 3)  # Tucker ranks (tensorly, JAX backend)
  c.yukawa.seed = 123  # PRNG seed of the Monte Carlo points

  c.validation = ml_collections.ConfigDict()
  c.validation.n_points = 2048  # points for torsion / positivity statistics
  c.validation.curvature_points = 64  # points for Riemann / Ricci / |nabla phi| (nested jacfwd)
  c.validation.curvature = True  # report curvature norms and |nabla phi| before/after
  c.validation.trial_space_betti = True  # Betti numbers by Rayleigh-Ritz on a Fourier trial space
  c.validation.heads = True  # Rayleigh-Ritz on the learned heads + Yukawa couplings (torus)

  c.joyce = ml_collections.ConfigDict()  # problem.name = "joyce" only (g2/joyce_pipeline.py)
  c.joyce.t = 0.08  # resolution scale t of M_t (Eguchi-Hanson scale), in (0, 0.4)
  c.joyce.orbifold_grid_n = 3  # stage 1: tensor grid n^7 of the orbifold Betti ladder
  c.joyce.orbifold_sizes = (0, 2)  # stage 1: trig frequencies per rung
  c.joyce.eh_points = 16  # stage 2: random points of R^3 x EH(a = t) for the torsion / ASD checks
  c.joyce.torsion_ts = (0.04, 0.08, 0.16)  # stage 3: t values of the ||dpsi_t|| power law
  c.joyce.n_radial = 64  # stage 3: Gauss-Legendre nodes of the radial torsion integral
  c.joyce.green_points = 1024  # stage 3: importance-sampled points, phi_t vs phi_t^G torsion at t
  c.joyce.region_points = 256  # stage 3: points per region (each singular T^3, the rest) for the torsion map
  c.joyce.plot = True  # write results/joyce.png (torsion per region, spectra with the gap)
  # Stage 4 (g2/resolution_spectrum.py): metric of "glued" phi_t (smooth on M_t) or "green" phi_t^G
  # (its Green term is only orbifold-smooth at the exceptional spheres: README)
  c.joyce.spectrum_base = "glued"
  c.joyce.spectrum_scales = (0.5, 0.7, 1.4, 2.0, 2.8, 4.0)  # local profile scales, units of t
  c.joyce.spectrum_powers = (1, 2, 3)  # local profile decay exponents
  c.joyce.spectrum_global_frequencies = 0  # axis frequencies of the Gamma-averaged trig space (0..7)
  c.joyce.spectrum_r_min = 0.05  # innermost sampled |u| in a tube, units of t
  c.joyce.spectrum_points_outside = 512  # quadrature points outside the tubes
  c.joyce.spectrum_points_per_orbit = 512  # quadrature points in the tube of each singular T^3
  c.joyce.spectrum_chunk = 128  # points per jitted chunk

  if variant in ("quick", "quick_planted"):
    # 2-core CPU (about 250-300 CPU-seconds for training; README): 1000 steps, 21 + 35 heads
    # (b2, b3 of T^7; 77 would force 42 heads off the harmonic space), harmonic-energy weights
    # x10 of the original's table so the heads become harmonic within the run, cheaper
    # validation stages. quick_planted: the planted background (labelled sanity check).
    if variant == "quick_planted":
      c.problem.torus_background = "planted_low_frequency"
    c.model.max_frequency = 2
    c.model.phi_width = 64
    c.model.phi_depth = 2
    c.model.harmonic_width = 64
    c.model.harmonic_depth = 1
    c.model.n_h3 = 35
    c.curriculum.harm_pen = (0.1, 0.2, 0.5, 1.0, 2.0)
    c.optim.learning_rate = 3e-3
    c.optim.warmup_steps = 50
    c.train.num_steps = 1000
    c.train.batch_size = 128
    c.train.harmonic_batch_size = 32
    c.train.log_every = 50
    c.train.eval_every = 250
    c.train.eval_batch_size = 512
    c.train.checkpoint_every = 250
    c.train.plot_every = 0
    c.adaptive.start_step = 100
    c.adaptive.interval = 50
    c.harmonic.n_points = 512
    c.harmonic.grid_n = 3
    c.harmonic.trial_sizes = (0, 3, 6)
    c.yukawa.mc_samples = 2048
    c.yukawa.grid_ns = (2, 3, 4)
    c.validation.n_points = 512
    c.validation.curvature_points = 8
  elif variant == "tiny":
    c.model.max_frequency = 1
    c.model.phi_width = 32
    c.model.phi_depth = 1
    c.model.harmonic_width = 16
    c.model.harmonic_depth = 1
    c.model.n_h2 = 3
    c.model.n_h3 = 4
    c.optim.learning_rate = 3e-3
    c.optim.warmup_steps = 10
    c.train.num_steps = 200
    c.train.batch_size = 64
    c.train.harmonic_batch_size = 16
    c.train.log_every = 20
    c.train.eval_every = 100
    c.train.eval_batch_size = 128
    c.train.checkpoint_every = 50
    c.train.plot_every = 0
    c.adaptive.start_step = 20
    c.adaptive.interval = 20
    c.harmonic.n_points = 256
    c.harmonic.grid_n = 3
    c.harmonic.trial_sizes = (0, 3, 6)
    c.yukawa.mc_samples = 512
    c.yukawa.grid_ns = (2, 3, 4)
    c.validation.n_points = 128
    c.validation.curvature_points = 4
  elif variant.startswith("orbifold"):
    # T^7/Gamma (g2/orbifold.py): the non-planted torus background with F, beta and the eta net
    # Gamma-averaged (8 images per evaluation). b2 = 0: no harmonic heads, no Yukawa tensor; the
    # Betti numbers are estimated on the Gamma-averaged trig trial space only.
    tiny = variant == "orbifold_tiny"
    c.problem.name = "orbifold"
    c.train.train_harmonic = False
    c.validation.heads = False
    c.model.n_h2 = 0
    c.model.n_h3 = 0
    c.model.max_frequency = 1 if tiny else 2
    c.problem.background_min_l1 = 2 if tiny else 3
    # The average shrinks beta's rms ~3x (torsion ~10x): amplitude 0.3 puts the background's
    # torsion near the T^7 problem's (0.41 there).
    c.problem.background_amplitude = 0.3
    c.model.phi_width = 32 if tiny else 64
    c.model.phi_depth = 1 if tiny else 2
    c.optim.learning_rate = 3e-3
    c.optim.warmup_steps = 10 if tiny else 50
    # Steps and batch of the T^7 quick run; each point costs 8 evaluations of every averaged
    # field (~0.8 CPU-s per step at batch 128).
    c.train.num_steps = 60 if tiny else 1000
    c.train.batch_size = 32 if tiny else 128
    c.train.log_every = 20 if tiny else 50
    c.train.eval_every = 30 if tiny else 250
    c.train.eval_batch_size = 64 if tiny else 512
    c.train.checkpoint_every = 30 if tiny else 250
    c.train.plot_every = 0
    c.adaptive.start_step = 20 if tiny else 100
    c.adaptive.interval = 20 if tiny else 50
    c.harmonic.grid_n = 3
    c.harmonic.trial_sizes = (0, 2) if tiny else (0, 2, 4)
    c.validation.n_points = 64 if tiny else 512
    # Curvature (nested third derivatives through the 8-fold average) segfaulted inside XLA on
    # CPU after the 600-step run (g2/README.md): off until that is understood.
    c.validation.curvature = False
  elif variant.startswith("joyce"):
    # Issue 16 stages 1-4 at one t (no training loop: the G2-structure is Joyce's glued phi_t and
    # its Green's-function correction; learning on M_t is g2.resolution_learning).
    c.problem.name = "joyce"
    if variant == "joyce":  # GPU scale: the stage-4 quadrature and trial space x4 / x2
      c.joyce.green_points = 8192
      c.joyce.region_points = 2048
      c.joyce.orbifold_sizes = (0, 2, 4)
      c.joyce.spectrum_points_outside = 8192
      c.joyce.spectrum_points_per_orbit = 4096
      c.joyce.spectrum_scales = (0.35, 0.5, 0.7, 1.4, 2.0, 2.8, 4.0, 5.6)
      c.joyce.spectrum_powers = (1, 2, 3, 4)
      c.joyce.spectrum_chunk = 512
  elif variant.startswith("bryant_salamon"):
    # Chebyshev profile of u' in float64, radii at arcsine density and 4 fixed generic angle
    # tuples, unweighted radial mean of the torsion density, Adam through the curriculum, then
    # L-BFGS inside the last phase.
    full = variant == "bryant_salamon"
    c.problem.name = "bryant_salamon"
    # Adam through four phases (the table's weights on closure/coclosure), L-BFGS in the last.
    c.curriculum.phase_names = ("adam_start", "adam_descent", "adam_refinement", "adam_late",
                                "adam_then_lbfgs_polish" if full else "lbfgs_polish")
    c.problem.bs_angle_sets = 4
    c.problem.bs_radial_sampling = "chebyshev"
    c.problem.bs_loss_weighting = "radial"
    c.model.profile_kind = "chebyshev"
    c.model.profile_degree = 32 if full else 24
    c.train.train_harmonic = False
    c.train.float64 = True
    c.optim.learning_rate = 1e-2
    c.optim.warmup_steps = 50
    c.train.num_steps = 1500 if full else 450
    c.train.lbfgs_steps = 400 if full else 150
    c.train.batch_size = 256 if full else 128
    c.train.log_every = 50
    c.train.eval_every = 250 if full else 150
    c.train.eval_batch_size = 512
    c.train.checkpoint_every = 250 if full else 150
    c.train.plot_every = 0
    c.adaptive.start_step = 100
    c.adaptive.interval = 50
    c.validation.n_points = 512
    c.validation.curvature_points = 16
  return c
