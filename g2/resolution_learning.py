"""Learning a torsion-free G2-structure on Joyce's resolution M_t (issue 16, stage 3):
φ = φ_t + d(η_orb + η_loc), Γ-invariant and closed by construction, trained until the held-out
torsion reaches a plateau (or a step / wall-clock cap), for one or several resolution scales t.

    python -m g2.resolution_learning --learn_t 0.04,0.08,0.16,0.24 --out_dir runs/joyce_learn
    python -m g2.resolution --learn_t 0.16 ...   (the same: `g2.resolution` forwards --learn_t here)

Runs unchanged on CPU and GPU (float32 by default, `--x64 1` for float64; float32 matmuls at
`--matmul_precision highest` so that a GPU does not silently use TF32 in the torsion's many
contractions). `g2/results/gpu_joyce_cmd.sh` is the GPU command (one process per t).

Training. Adam (after global-norm clipping) on the importance-sampled volume-normalised torsion
divided by its held-out value at φ_t (so the optimiser sees an O(1) loss for every t; the raw
torsion falls like t⁸ and would sink below Adam's ε at small t), plus 0.1·(log Vol)². Linear
warm-up, then a constant learning rate that drops by `lr_drop_factor` at each plateau.

Plateau criterion (`plateau_reached`). The held-out torsion τ is evaluated every `eval_every`
steps on a fixed validation sample. Within the current learning-rate segment (steps since the
last drop), at segment length s ≥ `min_steps`: with B = the best τ so far in the segment and
B_prev = the best τ over the segment's first (1 − window)·s steps, the segment has reached a
plateau when B > (1 − tol)·B_prev, i.e. the best held-out torsion improved by less than tol
(default 2 %) over the last window (default 25 %) of the segment's steps. A plateau with drops
left lowers the learning rate and starts a new segment; otherwise training stops ("plateau").
It also stops at `max_steps` or when `max_seconds` of wall-clock time (from process start,
compilation included) have passed. The reported numbers ("before" / "after", reduction,
‖φ − φ_t‖ / ‖φ_t‖) are on a separate test sample, not the one that chose the stopping point.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import os
import sys
import time
from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from g2 import forms
from g2 import g2form
from g2 import joyce
from g2 import model
from g2 import objective
from g2 import resolution as res


class LocalFormNet(nn.Module):
  """(y, u) [7] -> a 2-form [21] in a tube's chart coordinates: MLP on (sin y, cos y, u, |u|²)."""
  width: int
  depth: int

  @nn.compact
  def __call__(self, w: jax.Array) -> jax.Array:
    y, u = w[:3], w[3:]
    h = jnp.concatenate([jnp.sin(y), jnp.cos(y), u, jnp.sum(u * u)[None]])
    for i in range(self.depth):
      h = nn.silu(nn.Dense(self.width, name=f"hidden_{i}")(h))
    return nn.Dense(21, kernel_init=nn.initializers.zeros, name="out")(h)


def _u_degree_signs() -> np.ndarray:
  """[21]: (−1)^(number of u-indices) of each 2-form component: the stabiliser (y, u) ↦ (y, −u)."""
  return np.asarray([(-1.0) ** sum(i >= 3 for i in idx) for idx in forms.combinations(2)])


@dataclasses.dataclass(frozen=True)
class ResolutionLearner:
  """Learns φ = φ_t + dη on M_t with η = η_orb + η_loc (issue 16, stage 3):

  η_orb = Γ-average of the package's periodic η network on T⁷ (`joyce.average_forms`);
  η_loc = χ_loc(|u|) · (stabiliser-symmetrised LocalFormNet)(y, u) in every tube's chart (one
  net shared by the 48 tubes; Γ-invariant because the charts of an orbit are Γ-images and the
  symmetrisation makes it invariant under (y, u) ↦ (y, −u)), supported in |u| < local_radius.
  The loss is the volume-normalised torsion (package definition, `objective`) estimated by
  importance sampling: a fraction `tube_fraction` of the points uniform in the tubes |u| <
  sample_radius, the rest uniform on T⁷, each weighted by (uniform density)/(mixture density).
  """
  t: float
  r_inner: float = 0.35
  r_outer: float = 0.7
  max_frequency: int = 2
  width: int = 64
  depth: int = 2
  local_width: int = 64
  local_depth: int = 2
  local_radius: float = 0.77
  local_inner: float = 0.45
  sample_radius: float = 0.77
  tube_fraction: float = 0.75
  eta_scale: float = 1.0  # η = eta_scale · (η_orb + η_loc): sets the size one Adam step can reach
  base: str = "glued"  # φ_t ("glued") or its Green's-function correction ("green", g2.resolution_green)

  def __post_init__(self):
    res.GluedForm(self.t, self.r_inner, self.r_outer)
    bound = res.min_torus_distance() / 2
    for name in ("local_radius", "sample_radius"):
      val = getattr(self, name)
      if not self.r_outer <= val < bound:
        raise ValueError(f"{name}={val!r} is invalid: allowed r_outer={self.r_outer} <= value < "
                         f"{bound:.4f} (inside the disjoint tubes)")
    if not 0 < self.local_inner < self.local_radius:
      raise ValueError(f"local_inner={self.local_inner!r} is invalid: allowed 0 < value < "
                       f"local_radius={self.local_radius}")
    if self.base not in ("glued", "green"):
      raise ValueError(f"base={self.base!r} is invalid: allowed 'glued' or 'green'")
    if not (np.isfinite(self.eta_scale) and self.eta_scale > 0):
      raise ValueError(f"eta_scale={self.eta_scale!r} is invalid: allowed a number > 0")
    if not 0 <= self.tube_fraction < 1:
      raise ValueError(f"tube_fraction={self.tube_fraction!r} is invalid: allowed [0, 1)")

  # -------------------------------------------------------------- model
  def nets(self):
    orb = model.PeriodicFormNet(model.PeriodicNetConfig(
        max_frequency=self.max_frequency, width=self.width, depth=self.depth, out_dim=21))
    return orb, LocalFormNet(self.local_width, self.local_depth)

  def init_params(self, key):
    k1, k2 = jax.random.split(key)
    orb, loc = self.nets()
    return {"orb": orb.init(k1, jnp.zeros(7)), "loc": loc.init(k2, jnp.zeros(7))}

  def eta_fn(self, params) -> Callable[[jax.Array], jax.Array]:
    """x [7] -> η(x) [21] (Γ-invariant)."""
    orb, loc = self.nets()
    eta_orb = joyce.average_forms(2, lambda x: orb.apply(params["orb"], x)[None])
    sign = _u_degree_signs()
    lo, hi = self.local_inner ** 2, self.local_radius ** 2
    flip = np.asarray([1.0, 1, 1, -1, -1, -1, -1])

    def local(w):
      sym = 0.5 * (loc.apply(params["loc"], w) + jnp.asarray(sign, w.dtype)
                   * loc.apply(params["loc"], w * jnp.asarray(flip, w.dtype)))
      v = jnp.sum(w[3:] ** 2)
      return res.smooth_step((hi - v) / (hi - lo)) * sym

    def eta(x):
      p, w = res.nearest_chart(x)
      lw = local(w)  # chart components; to x coordinates by the pullback along w = Pᵀ(x − c)
      lx = forms.from_tensor(jnp.einsum("ai,bj,ab->ij", p.T, p.T, forms.to_tensor(lw, 2)), 2)
      return self.eta_scale * (eta_orb(x)[0] + lx)
    return eta

  def base_phi(self) -> Callable[[jax.Array, jax.Array], jax.Array]:
    """(x, t) -> the closed form that dη corrects: φ_t, or φ_t^G (`g2.resolution_green`)."""
    if self.base == "green":
      from g2 import resolution_green  # pylint: disable=g-import-not-at-top
      return resolution_green.green_phi(self.r_inner, self.r_outer)
    return res.glued_phi(self.r_inner, self.r_outer)

  def phi_fn(self, params) -> Callable[[jax.Array], jax.Array]:
    base = self.base_phi()
    d_eta = forms.exterior_derivative(self.eta_fn(params), 2)
    return lambda x: base(x, jnp.asarray(self.t, x.dtype)) + d_eta(x)

  # -------------------------------------------------------------- sampling
  def sample(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Points [n, 7] and importance weights [n] (mean of w·f estimates the T⁷ mean of f)."""
    cs = res.charts()
    n_tube = int(round(self.tube_fraction * n))
    pts = [rng.uniform(0.0, res.TWO_PI, (n - n_tube, 7))]
    j = rng.integers(len(cs), size=n_tube)
    dirs = rng.normal(size=(n_tube, 4))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    u = self.sample_radius * rng.uniform(size=(n_tube, 1)) ** 0.25 * dirs
    y = rng.uniform(0.0, res.TWO_PI, (n_tube, 3))
    w = np.concatenate([y, u], axis=1)
    centres, frames, _ = res.chart_arrays()
    pts.append(np.mod(centres[j] + np.einsum("nij,nj->ni", frames[j], w), res.TWO_PI))
    x = np.concatenate(pts)
    in_tube = self.distance_to_tori(x) < self.sample_radius
    v_tube = res.TWO_PI ** 3 * 0.5 * np.pi ** 2 * self.sample_radius ** 4
    v_t7 = res.TWO_PI ** 7
    q = (1.0 - self.tube_fraction) / v_t7 + self.tube_fraction * in_tube / (len(cs) * v_tube)
    return x, (1.0 / v_t7) / q

  @staticmethod
  def distance_to_tori(x: np.ndarray) -> np.ndarray:
    centres, _, mask = res.chart_arrays()
    d = np.mod(x[:, None, :] - centres[None] + np.pi, res.TWO_PI) - np.pi
    return np.sqrt(np.min(np.sum(d * d * mask[None], axis=-1), axis=1))

  # -------------------------------------------------------------- objective
  def statistics(self, params, x, w) -> dict:
    """Importance-weighted volume-normalised torsion (package definition), volume, and the
    per-point terms (for standard errors)."""
    geo = jax.vmap(lambda p: objective.training_geometry(self.phi_fn(params), p))(x)
    s = geo["sqrt_det_g"]
    dens = geo["dphi_sq"] + geo["dpsi_sq"]
    vol = jnp.mean(w * s)
    return {"torsion": jnp.mean(w * dens * s) / vol * vol ** (2.0 / 7.0),
            "log_volume_sq": jnp.log(vol) ** 2, "num": w * dens * s, "den": w * s,
            "dphi_max": jnp.sqrt(jnp.max(geo["dphi_sq"]))}

  def distance(self, params, x, w) -> jax.Array:
    """‖φ − φ_t‖_{L²(g_{φ_t})} / ‖φ_t‖ (= √7 Vol): the relative size of the learned dη."""
    base = self.base_phi()
    d_eta = forms.exterior_derivative(self.eta_fn(params), 2)

    def one(p):
      phi_t = base(p, jnp.asarray(self.t, p.dtype))
      g, g_inv, s = g2form.metric_data_from_phi(phi_t)
      return forms.norm_sq(d_eta(p), 3, g, g_inv=g_inv, sqrt_det_g=s) * s, s
    num, s = jax.vmap(one)(x)
    return jnp.sqrt(jnp.mean(w * num) / (7.0 * jnp.mean(w * s)))


def plateau_reached(steps, values, window: float = 0.25, tol: float = 0.02,
                    min_steps: int = 200) -> bool:
  """True when the best of `values` improved by less than `tol` (relative) over the last
  `window` fraction of the steps: steps [n] (ascending, the segment starts at steps[0]) and
  values [n] are held-out evaluations of one learning-rate segment (see the module doc)."""
  steps, values = np.asarray(steps, float), np.asarray(values, float)
  span = steps[-1] - steps[0] if len(steps) else 0.0
  if span < min_steps or len(steps) < 2:
    return False
  earlier = steps - steps[0] <= (1.0 - window) * span
  return bool(np.min(values) > (1.0 - tol) * np.min(values[earlier]))


@dataclasses.dataclass(frozen=True)
class TrainSettings:
  """The optimisation and stopping settings of `learn` (see the module doc)."""
  max_steps: int = 2000
  batch: int = 128
  learning_rate: float = 2e-3
  warmup_steps: int = 20
  eval_every: int = 25
  eval_points: int = 4096
  plateau_window: float = 0.25
  plateau_tol: float = 0.02
  min_steps: int = 200
  lr_drops: int = 1
  lr_drop_factor: float = 0.1
  max_seconds: float = float("inf")
  seed: int = 0


def _torsion_and_se(num, den) -> tuple[float, float]:
  """mean(num)/mean(den) · mean(den)^(2/7) and its delta-method standard error (float64)."""
  num, den = np.asarray(num, np.float64), np.asarray(den, np.float64)
  vol = den.mean()
  ratio = num.mean() / vol
  se = np.std(num - ratio * den, ddof=1) / np.sqrt(len(num)) / vol * vol ** (2.0 / 7.0)
  return float(ratio * vol ** (2.0 / 7.0)), float(se)


def learn(learner: ResolutionLearner, settings: TrainSettings, start_time: float | None = None,
          deadline: float | None = None, on_eval: Callable[[dict], None] | None = None,
          log=print) -> tuple[dict, dict]:
  """Trains η until a plateau / the caps (module doc). Returns (result dict, params).

  Wall-clock times are from `start_time` (default: now); training stops at `deadline` (a
  time.time() value; default start_time + settings.max_seconds). on_eval(partial_result) is
  called after every evaluation (e.g. to write the JSON so far)."""
  import optax  # pylint: disable=g-import-not-at-top
  s = settings
  start_time = time.time() if start_time is None else start_time
  deadline = start_time + s.max_seconds if deadline is None else deadline
  cpu0 = time.process_time()
  dtype = jnp.zeros(()).dtype  # float32, or float64 under jax_enable_x64
  params = learner.init_params(jax.random.PRNGKey(s.seed))
  tx = optax.chain(optax.clip_by_global_norm(1.0), optax.scale_by_adam())
  opt = tx.init(params)

  def loss_fn(p, x, w, scale):
    st = learner.statistics(p, x, w)
    return st["torsion"] / scale + 0.1 * st["log_volume_sq"], st["torsion"]

  @functools.partial(jax.jit, donate_argnums=(0, 1))
  def step(p, o, x, w, lr, scale):
    (_, tor), grads = jax.value_and_grad(loss_fn, has_aux=True)(p, x, w, scale)
    updates, o = tx.update(grads, o, p)
    return optax.apply_updates(p, jax.tree.map(lambda u: -lr * u, updates)), o, tor

  @jax.jit
  def evaluate(p, x, w):
    st = learner.statistics(p, x, w)
    return st["num"], st["den"], learner.distance(p, x, w), st["dphi_max"]

  def sample(rng, n):
    x, w = learner.sample(rng, n)
    return jnp.asarray(x, dtype), jnp.asarray(w, dtype)

  valid = sample(np.random.default_rng([s.seed, 10 ** 9]), s.eval_points)
  test = sample(np.random.default_rng([s.seed, 10 ** 9 + 1]), s.eval_points)

  def summary(p, data):
    num, den, dist, dphi_max = evaluate(p, *data)
    tor, se = _torsion_and_se(num, den)
    return {"torsion": tor, "torsion_se": se, "distance_to_phi_t": float(dist),
            "dphi_max": float(dphi_max)}

  before = summary(params, test)
  val0 = summary(params, valid)
  scale = jnp.asarray(val0["torsion"], dtype)
  log(f"t = {learner.t}: held-out normalised torsion of "
      f"{'φ_t^G' if learner.base == 'green' else 'φ_t'} {before['torsion']:.4g} ± "
      f"{before['torsion_se']:.2g} (test), {val0['torsion']:.4g} (validation); "
      f"{time.time() - start_time:.1f} s")
  result = {"t": learner.t, "settings": dataclasses.asdict(settings),
            "learner": dataclasses.asdict(learner), "dtype": str(dtype), "before": before,
            "loss_scale": val0["torsion"], "curve": [], "lr_drop_steps": [], "stop": None}
  curve = result["curve"]

  def record(i, train_vals, lr):
    val = summary(params, valid)
    row = {"step": i, "wall_s": time.time() - start_time, "lr": lr,
           "train_torsion": float(np.mean(train_vals)) if train_vals else None,
           "heldout_torsion": val["torsion"], "heldout_torsion_se": val["torsion_se"],
           "distance_to_phi_t": val["distance_to_phi_t"]}
    curve.append(row)
    log(f"  step {i:6d} {row['wall_s']:7.1f} s  lr {lr:.2g}  train {row['train_torsion'] or 0:.4g}"
        f"  held-out {val['torsion']:.4g} ± {val['torsion_se']:.2g}  ‖φ−φ_t‖/‖φ_t‖ "
        f"{val['distance_to_phi_t']:.3g}")
    if on_eval is not None:
      on_eval(result)

  record(0, [], 0.0)
  rng = np.random.default_rng(s.seed)
  drops, segment_start, train_vals, pending, i = 0, 0, [], None, 0
  lr_now = s.learning_rate
  while True:
    if i >= s.max_steps:
      result["stop"] = "max_steps"
      break
    if time.time() > deadline:
      result["stop"] = "max_seconds"
      break
    warm = min(1.0, (i + 1) / s.warmup_steps) if s.warmup_steps > 0 else 1.0
    lr_now = s.learning_rate * s.lr_drop_factor ** drops
    x, w = sample(rng, s.batch)
    params, opt, tor = step(params, opt, x, w, jnp.asarray(warm * lr_now, dtype), scale)
    if pending is not None:  # one step of lag: the host samples while the device computes
      train_vals.append(float(pending))
    pending, i = tor, i + 1
    if i % s.eval_every == 0:
      train_vals.append(float(pending))
      pending = None
      record(i, train_vals, warm * lr_now)
      train_vals = []
      if not np.isfinite(curve[-1]["heldout_torsion"]):
        result["stop"] = "non_finite"
        break
      seg = [r for r in curve if r["step"] >= segment_start]
      if plateau_reached([r["step"] for r in seg], [r["heldout_torsion"] for r in seg],
                         s.plateau_window, s.plateau_tol, s.min_steps):
        if drops >= s.lr_drops:
          result["stop"] = "plateau"
          break
        drops, segment_start = drops + 1, i
        result["lr_drop_steps"].append(i)
        log(f"  plateau at step {i}: learning rate → {s.learning_rate * s.lr_drop_factor ** drops:.2g}")
  if pending is not None:
    train_vals.append(float(pending))
  if not curve or curve[-1]["step"] != i:
    record(i, train_vals, lr_now)
  after = summary(params, test)
  best = min(curve, key=lambda r: r["heldout_torsion"])
  result.update(after=after, steps=i, reduction=before["torsion"] / after["torsion"],
                best_validation={"step": best["step"], "torsion": best["heldout_torsion"]},
                wall_s=time.time() - start_time, cpu_s=time.process_time() - cpu0)
  log(f"t = {learner.t}: stop ({result['stop']}) at step {i}; test torsion {before['torsion']:.4g}"
      f" → {after['torsion']:.4g} ± {after['torsion_se']:.2g} (×{result['reduction']:.3g} lower), "
      f"‖φ − φ_t‖ / ‖φ_t‖ = {after['distance_to_phi_t']:.3g}; {result['wall_s']:.1f} s")
  if on_eval is not None:
    on_eval(result)
  return result, params


# ------------------------------------------------------------------------------------------
# Command line


class _OneLineParser:
  """argparse with every user mistake as one line on stderr and exit code 2."""

  def __init__(self, description):
    import argparse  # pylint: disable=g-import-not-at-top

    class P(argparse.ArgumentParser):
      def error(self, message):  # argparse's default prints the usage first (two lines)
        fail(message)
    self.parser = P(description=description)


def fail(message: str):
  sys.stderr.flush()
  print(f"error: {message}", file=sys.stderr, flush=True)
  raise SystemExit(2)


def _parse_ts(text: str, flag: str = "--learn_t") -> list[float]:
  try:
    ts = [float(v) for v in text.split(",")]
  except ValueError:
    ts = []
  if not ts or not all(np.isfinite(t) and t > 0 for t in ts):
    fail(f"{flag}={text!r} is invalid: allowed a comma-separated list of numbers t > 0")
  return ts


def _atomic_json(path: str, obj) -> None:
  tmp = f"{path}.tmp"
  with open(tmp, "w") as f:
    json.dump(obj, f, indent=1)
  os.replace(tmp, path)


def write_out(out: dict, path: str) -> dict:
  """The g2 CLIs' common tail: `out` as JSON at `path` (atomically; nothing when path is "")."""
  if path:
    _atomic_json(path, out)
  return out


def main(argv=None) -> dict:
  """python -m g2.resolution_learning --learn_t 0.04,0.16 [--out_dir DIR] [options]: learn
  φ_t + dη on M_t for each t (in turn), to a held-out plateau; JSON per t in --out_dir."""
  start = time.time()
  p = _OneLineParser(main.__doc__.splitlines()[0]).parser
  d, dl = TrainSettings(), ResolutionLearner(0.1)
  p.add_argument("--learn_t", required=True, help="comma-separated resolution scales t > 0")
  p.add_argument("--r_inner", type=float, default=dl.r_inner)
  p.add_argument("--r_outer", type=float, default=dl.r_outer)
  for name in ("max_frequency", "width", "depth", "local_width", "local_depth"):
    p.add_argument(f"--{name}", type=int, default=getattr(dl, name))
  p.add_argument("--eta_scale", default="t4",
                 help="η = eta_scale · net: a number, or 't4' for (t / 0.16)⁴ (the size of "
                      "φ_t's torsion, ∝ t⁴, relative to t = 0.16)")
  p.add_argument("--base", default="glued", choices=("glued", "green"),
                 help="correct φ_t (glued) or its Green's-function correction φ_t^G (green)")
  p.add_argument("--max_steps", "--steps", type=int, default=d.max_steps)
  p.add_argument("--batch", type=int, default=d.batch)
  p.add_argument("--learning_rate", type=float, default=d.learning_rate)
  p.add_argument("--warmup_steps", type=int, default=d.warmup_steps)
  p.add_argument("--eval_every", type=int, default=d.eval_every)
  p.add_argument("--eval_points", type=int, default=d.eval_points)
  p.add_argument("--plateau_window", type=float, default=d.plateau_window)
  p.add_argument("--plateau_tol", type=float, default=d.plateau_tol)
  p.add_argument("--min_steps", type=int, default=d.min_steps)
  p.add_argument("--lr_drops", type=int, default=d.lr_drops)
  p.add_argument("--lr_drop_factor", type=float, default=d.lr_drop_factor)
  p.add_argument("--max_seconds", type=float, default=0.0,
                 help="wall-clock cap on training for the whole call, from process start, "
                      "compilation included; shared equally by the t values (0: none)")
  p.add_argument("--seed", type=int, default=d.seed)
  p.add_argument("--x64", type=int, default=0, choices=(0, 1), help="float64 (default float32)")
  p.add_argument("--matmul_precision", default="highest", choices=("default", "high", "highest"))
  p.add_argument("--out_dir", default="", help="writes resolution_learn_t<t>.json per t here")
  p.add_argument("--out", default="", help="also writes all runs to this one JSON file")
  args = p.parse_args(argv)
  ts = _parse_ts(args.learn_t)
  checks = {"max_steps": 1, "batch": 2, "eval_every": 1, "eval_points": 2, "warmup_steps": 0,
            "min_steps": 0, "lr_drops": 0, "width": 1, "depth": 0, "local_width": 1,
            "local_depth": 0, "max_frequency": 1}
  for name, low in checks.items():
    if getattr(args, name) < low:
      fail(f"--{name}={getattr(args, name)!r} is invalid: allowed an integer >= {low}")
  if not (np.isfinite(args.learning_rate) and args.learning_rate > 0):
    fail(f"--learning_rate={args.learning_rate!r} is invalid: allowed a number > 0")
  if not (np.isfinite(args.max_seconds) and args.max_seconds >= 0):
    fail(f"--max_seconds={args.max_seconds!r} is invalid: allowed a number >= 0 (0: no cap)")
  for name in ("plateau_window", "plateau_tol", "lr_drop_factor"):
    if not 0 < getattr(args, name) < 1:
      fail(f"--{name}={getattr(args, name)!r} is invalid: allowed 0 < value < 1")
  if args.out_dir and not os.path.isdir(args.out_dir):
    try:
      os.makedirs(args.out_dir, exist_ok=True)
    except OSError as e:
      fail(f"--out_dir={args.out_dir!r} is invalid: cannot create it ({e.strerror})")
  if args.eta_scale != "t4":
    try:
      eta_scale = float(args.eta_scale)
    except ValueError:
      fail(f"--eta_scale={args.eta_scale!r} is invalid: allowed a number > 0 or 't4'")
  learners = []
  for t in ts:
    try:
      learners.append(ResolutionLearner(
          t, args.r_inner, args.r_outer, eta_scale=(t / 0.16) ** 4 if args.eta_scale == "t4"
          else eta_scale, base=args.base, max_frequency=args.max_frequency, width=args.width,
          depth=args.depth, local_width=args.local_width, local_depth=args.local_depth))
    except ValueError as e:
      fail(str(e))
  settings = TrainSettings(
      max_steps=args.max_steps, batch=args.batch, learning_rate=args.learning_rate,
      warmup_steps=args.warmup_steps, eval_every=args.eval_every, eval_points=args.eval_points,
      plateau_window=args.plateau_window, plateau_tol=args.plateau_tol, min_steps=args.min_steps,
      lr_drops=args.lr_drops, lr_drop_factor=args.lr_drop_factor,
      max_seconds=args.max_seconds or float("inf"), seed=args.seed)
  jax.config.update("jax_enable_x64", bool(args.x64))
  jax.config.update("jax_default_matmul_precision", args.matmul_precision)
  env = {"backend": jax.default_backend(), "device": str(jax.devices()[0]),
         "device_kind": jax.devices()[0].device_kind, "jax_version": jax.__version__,
         "x64": bool(args.x64), "matmul_precision": args.matmul_precision,
         "xla_mem_fraction": os.environ.get("XLA_PYTHON_CLIENT_MEM_FRACTION"),
         "cpu_count": os.cpu_count(), "load_average_before": os.getloadavg(),
         "argv": list(sys.argv[1:] if argv is None else argv)}
  print(f"g2.resolution_learning on {env['device_kind']} ({env['backend']}, jax "
        f"{env['jax_version']}, {'float64' if args.x64 else 'float32'}): t = {ts}", flush=True)
  runs = []
  for k, learner in enumerate(learners):
    # The wall-clock cap is for the whole call: each t gets an equal share of what is left.
    left = settings.max_seconds - (time.time() - start)
    deadline = time.time() + left / (len(learners) - k)
    path = os.path.join(args.out_dir, f"resolution_learn_t{learner.t:g}.json") if args.out_dir else ""
    write = (lambda r, path=path: _atomic_json(path, {**r, "environment": env})) if path else None
    result, _ = learn(learner, settings, start_time=start, deadline=deadline,
                      log=lambda m: print(m, flush=True), on_eval=write)
    runs.append(result)
  out = {"learning": runs, "environment": env, "wall_s": time.time() - start}
  if args.out:
    _atomic_json(args.out, out)
  return out


if __name__ == "__main__":
  main()
