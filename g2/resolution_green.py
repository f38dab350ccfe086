"""A Green's-function correction of Joyce's glued φ_t (issue 16, stage 3): the tail of the
Eguchi–Hanson potential continued over the whole torus instead of cut off in the annulus.

Why. In a tube, φ_t = dy123 + dy1∧ω̃ + dy2∧Re Ω − dy3∧Im Ω with ω̃ = (i/2)∂∂̄P, P = v + χ D_t,
D_t = f_t − v = −t⁴/(2v) + O(t⁸/v³), v = |u|². For a U(2)-invariant potential P(v), with
Q = v P′ the Monge–Ampère ratio ω̃²/(Re Ω)² is Q Q′/v = (Q²)′/(2v): (ω̃, Re Ω, Im Ω) is
hyper-Kähler iff Q² = v² + c with c constant — c = t⁴ for Eguchi–Hanson, c = 0 for flat ℂ². No
radial potential supported in a tube connects the two: the "charge" c is conserved, and
∫_B ω̃² over a ball (fixed by ω̃ on its boundary sphere) is short of the flat volume by an amount
∝ t⁴ that no correction supported in the tube can move. The linear part of the defect is
Δ(χD_t)/4, whose integral over the tube is this flux. A potential correction that removes it
must be global: −(t⁴/2)𝒢 with 𝒢 the periodic Green's function of the fixed points, whose
Laplacian is a constant (the uniform background that balances the flux) away from them; a
constant defect is harmless (it adds a constant 3-form, which is torsion-free).

Construction. The 16 fixed tori of one generator g ∈ {α, β, γ} are T³ × {16 points} with the
points at u ∈ {0, π}⁴ in the chart of one of them (derived from `resolution.charts`, tested): the
lattice πℤ⁴. 𝒢 on ℝ⁴/πℤ⁴ with one point per cell (Ewald split of the 4-D heat kernel at time α):

    𝒢(u) = Σ_{n ∈ πℤ⁴} e^{−|u−n|²/4α}/|u−n|² + (1/π²) Σ_{m ≠ 0} cos(2m·u) e^{−4α|m|²}/|m|²,

so 𝒢 = 1/|u|² + smooth near 0 and Δ𝒢 = 4/π² elsewhere (tested). The corrected form is

    φ_t^G = φ_t + Σ_g P_g^* [dy1 ∧ (i/2)∂∂̄ H_g(u)],   H_g = −(t⁴/2)(𝒢(u) − χ(v₀)/v₀),

v₀ = distance² to the nearest lattice point, χ the cut-off of φ_t: in the annulus the Green tail
replaces the cut-off, near each torus H_g is smooth. Each term depends on u only, so φ_t^G is
closed; the sum over the 16 tori of g is the same form in every adapted frame, so it is
Γ-invariant (both tested). The remaining defect is O(t⁸) in the annulus (the D_t remainder)
plus the smooth O(t⁴) regular part of 𝒢 seen by the curved core.

    python -m g2.resolution_green --ts 0.08,0.16,0.24 --points 2048 [--out FILE]
"""
from __future__ import annotations

import functools
import itertools
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from g2 import eguchi_hanson as eh
from g2 import forms
from g2 import g2form
from g2 import resolution as res

GENERATORS = ("α", "β", "γ")


@functools.lru_cache(maxsize=None)
def generator_charts() -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], ...]:
  """Per generator: (centre [7], frame [7, 7], the 16 tori's u-positions [16, 4] in that chart)."""
  cs = res.charts()
  out = []
  for el in GENERATORS:
    ch = [c for c in cs if c.element == el]
    c0 = ch[0]
    us = np.stack([np.mod((c0.frame.T @ (c.centre - c0.centre))[3:], res.TWO_PI) for c in ch])
    out.append((c0.centre, c0.frame, us))
  return tuple(out)


@functools.lru_cache(maxsize=None)
def _modes(alpha: float, tol: float) -> np.ndarray:
  """Half of the m ∈ ℤ⁴ \\ 0 with e^{−4α|m|²} > tol (one of each ±m)."""
  m_max = int(np.ceil(np.sqrt(-np.log(tol) / (4 * alpha))))
  ms = np.asarray([m for m in itertools.product(range(-m_max, m_max + 1), repeat=4)
                   if 0 < sum(k * k for k in m) and np.exp(-4 * alpha * sum(k * k for k in m)) > tol
                   and tuple(m) > tuple(-k for k in m)], float)
  return ms


def green(alpha: float = 0.15, tol: float = 1e-10, subtract=None) -> Callable[[jax.Array], jax.Array]:
  """u [4] -> 𝒢(u) on ℝ⁴/πℤ⁴ (module doc), or 𝒢 − subtract(v₀)/v₀ when `subtract` is given
  (v₀ = |u − nearest lattice point|², the division done without cancellation)."""
  ms = _modes(alpha, tol)
  msq = np.sum(ms * ms, axis=1)
  coef = 2.0 / np.pi ** 2 * np.exp(-4 * alpha * msq) / msq
  offsets = np.asarray(list(itertools.product((0.0, 1.0), repeat=4)))[1:]  # the 15 other images

  def g(u):
    dt = u.dtype
    d = u - jnp.round(u / jnp.pi) * jnp.pi  # to the nearest lattice point, in [−π/2, π/2]
    s = jnp.where(d >= 0, 1.0, -1.0).astype(dt)
    far = d[None, :] - jnp.asarray(offsets, dt) * s[None, :] * jnp.pi  # [15, 4], |·| ≥ π/2
    v_far = jnp.sum(far * far, axis=1)
    short = jnp.sum(jnp.exp(-v_far / (4 * alpha)) / v_far)
    v0 = jnp.sum(d * d)
    small = v0 < 1e-8
    vs = jnp.where(small, 1.0, v0)
    if subtract is None:
      near = jnp.exp(-vs / (4 * alpha)) / vs  # singular at the point itself (not sampled)
    else:  # (e^{−v/4α} − χ)/v = (expm1(−v/4α) + 1 − χ)/v; 1 − χ = 0 near the point
      near = jnp.where(small, -1.0 / (4 * alpha),
                       (jnp.expm1(-vs / (4 * alpha)) + 1.0 - subtract(vs)) / vs)
    long = jnp.sum(jnp.asarray(coef, dt) * jnp.cos(2.0 * (jnp.asarray(ms, dt) @ u)))
    return short + near + long
  return g


def cutoff(r_inner: float, r_outer: float) -> Callable[[jax.Array], jax.Array]:
  """v -> χ(v) of `resolution.glued_correction` (1 inside r_inner, 0 outside r_outer)."""
  lo, hi = r_inner ** 2, r_outer ** 2
  return lambda v: res.smooth_step((hi - v) / (hi - lo))


@functools.lru_cache(maxsize=None)
def green_phi(r_inner: float = 0.35, r_outer: float = 0.7, alpha: float = 0.15,
              tol: float = 1e-10) -> Callable[[jax.Array, jax.Array], jax.Array]:
  """(x [7], t) -> φ_t^G(x) [35] (module doc)."""
  base = res.glued_phi(r_inner, r_outer)
  h = green(alpha, tol, subtract=cutoff(r_inner, r_outer))
  charts = generator_charts()

  def phi(x, t):
    dt = x.dtype
    out = base(x, t)
    pot = lambda u: -0.5 * t ** 4 * h(u)
    omega = eh.kahler_form(pot)
    dy1 = jnp.zeros(7, dt).at[0].set(1.0)
    for centre, frame, _ in charts:  # three generators
      p = jnp.asarray(frame, dt)
      w = p.T @ (x - jnp.asarray(centre, dt))
      local = forms.wedge(dy1, 1, eh._two_form_7d(omega(w[3:])), 2)  # pylint: disable=protected-access
      out = out + g2form.pullback(local, p.T)
    return out
  return phi


def compare(ts=(0.08, 0.16, 0.24), points: int = 2048, seed: int = 0, r_inner: float = 0.35,
            r_outer: float = 0.7, alpha: float = 0.15, log=print) -> dict:
  """Normalised torsion of φ_t and φ_t^G on the same importance-sampled points (± standard
  errors, the estimator of `resolution_learning`), and the exponents of c·t^p."""
  from g2 import resolution_learning as rl  # pylint: disable=g-import-not-at-top
  plain = res.glued_phi(r_inner, r_outer)
  corrected = green_phi(r_inner, r_outer, alpha)

  def batch(f):
    return jax.jit(jax.vmap(lambda x, t: g2form.torsion(lambda y: f(y, t))(x), in_axes=(0, None)))
  fns = {"glued": batch(plain), "green": batch(corrected)}

  @jax.jit
  def distance(x, w, t):  # ‖φ_t^G − φ_t‖_{L²(g_{φ_t})} / ‖φ_t‖, ‖φ_t‖² = 7 Vol
    def one(y):
      base = plain(y, t)
      g, g_inv, s = g2form.metric_data_from_phi(base)
      return forms.norm_sq(corrected(y, t) - base, 3, g, g_inv=g_inv, sqrt_det_g=s) * s, s
    num, s = jax.vmap(one)(x)
    return jnp.sqrt(jnp.mean(w * num) / (7.0 * jnp.mean(w * s)))
  rows = []
  for t in ts:
    learner = rl.ResolutionLearner(t, r_inner, r_outer)
    x, w = learner.sample(np.random.default_rng([seed, 7]), points)
    row = {"t": t}
    for name, f in fns.items():
      tor = f(jnp.asarray(x), jnp.asarray(t, jnp.asarray(x).dtype))
      dens = np.asarray(tor["dpsi_sq"] + tor["dphi_sq"], np.float64)
      s = np.asarray(tor["sqrt_det_g"], np.float64)
      val, se = rl._torsion_and_se(w * dens * s, w * s)  # pylint: disable=protected-access
      row[name] = {"torsion": val, "torsion_se": se,
                   "dphi_max": float(np.sqrt(np.max(np.asarray(tor["dphi_sq"]))))}
    row["reduction"] = row["glued"]["torsion"] / row["green"]["torsion"]
    xj = jnp.asarray(x)
    row["distance_green_to_phi_t"] = float(distance(xj, jnp.asarray(w, xj.dtype),
                                                    jnp.asarray(t, xj.dtype)))
    log(f"t = {t}: normalised torsion glued φ_t {row['glued']['torsion']:.4g} ± "
        f"{row['glued']['torsion_se']:.2g}, Green-corrected {row['green']['torsion']:.4g} ± "
        f"{row['green']['torsion_se']:.2g} (×{row['reduction']:.3g} lower); ‖φ_t^G − φ_t‖ / ‖φ_t‖ = "
        f"{row['distance_green_to_phi_t']:.3g}")
    rows.append(row)
  out = {"rows": rows, "points": points, "seed": seed, "alpha": alpha, "r_inner": r_inner,
         "r_outer": r_outer}
  if len(ts) > 1:
    logt = np.log(np.asarray(ts))
    for name in fns:
      out[f"exponent_{name}"] = float(np.polyfit(logt, np.log([r[name]["torsion"] for r in rows]), 1)[0])
    out["exponent_distance"] = float(np.polyfit(logt, np.log([r["distance_green_to_phi_t"]
                                                              for r in rows]), 1)[0])
  return out


def main(argv=None) -> dict:
  """python -m g2.resolution_green [--ts 0.08,0.16,0.24] [--points 2048] [--out FILE] (float64)."""
  import argparse  # pylint: disable=g-import-not-at-top
  import time  # pylint: disable=g-import-not-at-top
  from g2 import resolution_learning as rl  # pylint: disable=g-import-not-at-top
  p = rl._OneLineParser(main.__doc__.splitlines()[0]).parser  # pylint: disable=protected-access
  p.add_argument("--ts", default="0.08,0.16,0.24")
  p.add_argument("--points", type=int, default=2048)
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--alpha", type=float, default=0.15)
  p.add_argument("--out", default="")
  args = p.parse_args(argv)
  ts = rl._parse_ts(args.ts, "--ts")  # pylint: disable=protected-access
  if args.points < 2:
    rl.fail(f"--points={args.points!r} is invalid: allowed an integer >= 2")
  if not 0.02 <= args.alpha <= 0.3:
    rl.fail(f"--alpha={args.alpha!r} is invalid: allowed 0.02 <= alpha <= 0.3 (Ewald split)")
  jax.config.update("jax_enable_x64", True)
  t0 = time.process_time()
  out = compare(tuple(ts), args.points, args.seed, alpha=args.alpha)
  out["cpu_s"] = time.process_time() - t0
  return rl.write_out(out, args.out)


if __name__ == "__main__":
  main()
