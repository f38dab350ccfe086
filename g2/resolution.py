"""Joyce's resolution M_t of T⁷/Γ (issue 16, stage 3): charts around the 12 singular T³, the glued
closed G2-structure φ_t, and its torsion measured as a function of the resolution scale t.

Atlas. Each of the 48 fixed 3-tori of Γ in T⁷ (12 Γ-orbits of 4; `joyce.singular_set`) gets a chart
x = c + P (y, u): c a point of the torus, P a signed permutation sending the y-directions to the
torus's free coordinates and the u-directions to its fixed ones, chosen so that P^*φ0 is the
Eguchi–Hanson convention of `g2.eguchi_hanson` (φ0 = dy123 + dy1∧ω_I⁰ + dy2∧Re Ω − dy3∧Im Ω; found
by search over the signed permutations, not tabulated). The stabiliser {1, g} acts as (y, u) ↦ (y, −u),
so a tube |u| < R is T³ × B⁴/{±1}. Within an orbit the charts are the images (h(c), A_h P) of one
representative's chart, so everything built from them is Γ-invariant (tested). The 48 tubes are
pairwise disjoint for R < d_min / 2, d_min = π/2 the least distance between two fixed tori
(computed from the fixed values, `min_torus_distance`).

M_t is the orbifold with each tube's B⁴/{±1} replaced by Eguchi–Hanson with scale t. In the u
coordinates of ℂ² \\ 0 the blow-down EH → ℂ²/{±1} is the identity, so one chart — T⁷ with the
coordinates x, minus the fixed tori (measure zero) — covers M_t up to the exceptional spheres
(measure zero): ∫_{M_t} f vol = (1/|Γ|) ∫_{T⁷} f vol_g, with every integrand computed from the
glued φ_t (including the EH core, where vol_g = vol_flat exactly since ω_I² = (Re Ω)²). Forms that
are smooth and Γ-invariant on T⁷ pull back to smooth forms on M_t (the blow-down is smooth).

Glued form (Joyce, CMSH §11.5–12.2, with the Kähler-potential interpolation). With
v = |u|², f_t the EH potential and D_t = f_t − v = −t⁴/(2v) + O(t⁸/v³),

    ω̃_t = (i/2)∂∂̄(v + χ(v) D_t(v)),   φ_t = dy123 + dy1∧ω̃_t + dy2∧Re Ω − dy3∧Im Ω,

χ = 1 for |u| ≤ r_inner (pure EH, torsion-free) and 0 for |u| ≥ r_outer (pure φ0): φ_t is closed
everywhere (ω̃ is ∂∂̄-exact, Ω constant) and its torsion dψ_t lives in the annulus, where
(ω̃, Re Ω, Im Ω) is no longer hyper-Kähler. It is U(2)-invariant in u, so |dψ_t|²_g depends on |u|
only (tested) and the L² norm over M_t is a 1-D radial integral per tube (`torsion_profile`,
Gauss–Legendre): ‖dψ_t‖² = (48 / 8) · (2π)³ · 2π² ∫ r³ |dψ_t|²_g √det g dr. The expansion of D_t
predicts ‖dψ_t‖_{L²} ∝ t⁴ for fixed cut-off radii; `torsion_scaling` measures the exponent.
"""
from __future__ import annotations

import dataclasses
import functools
import itertools
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from g2 import eguchi_hanson as eh
from g2 import forms
from g2 import g2form
from g2 import joyce

TWO_PI = 2.0 * np.pi


@dataclasses.dataclass(frozen=True)
class Chart:
  """A tube around one fixed 3-torus in T⁷: x = centre + frame @ (y, u) (2π-periodic coordinates)."""
  orbit: int  # which singular T³ of T⁷/Γ (0..11)
  element: str  # the element of Γ fixing this torus
  centre: np.ndarray  # [7] a point of the torus
  frame: np.ndarray  # [7, 7] signed permutation, frame^*φ0 = φ0
  fixed: tuple[int, ...]  # the torus's fixed coordinates (the u-directions)


def _phi0_tensor() -> np.ndarray:
  return np.asarray(forms.to_tensor(g2form.phi0(), 3), np.float64)


@functools.lru_cache(maxsize=None)
def adapted_frames(free: tuple[int, ...]) -> np.ndarray:
  """All signed permutations P [n, 7, 7] with P e_a ∈ ±e_{free} for a < 3 (y-directions),
  P e_a ∈ ±e_{fixed} for a ≥ 3 (u-directions) and P^*φ0 = φ0 — the charts in which φ0 takes the
  Eguchi–Hanson convention of `g2.eguchi_hanson`."""
  fixed = [i for i in range(7) if i not in free]
  mats = []
  for py in itertools.permutations(free):
    for pu in itertools.permutations(fixed):
      cols = list(py) + list(pu)
      for signs in itertools.product((1.0, -1.0), repeat=7):
        p = np.zeros((7, 7))
        p[cols, np.arange(7)] = signs
        mats.append(p)
  mats = np.stack(mats)
  t = _phi0_tensor()
  pulled = np.einsum("ijk,nia,njb,nkc->nabc", t, mats, mats, mats, optimize=True)
  ok = np.all(np.abs(pulled - t) < 1e-12, axis=(1, 2, 3))
  return mats[ok]


def _centre(comp: joyce.FixedTorus) -> np.ndarray:
  c = np.zeros(7)
  for i, v in comp.values:
    c[i] = TWO_PI * float(v)
  return c


@functools.lru_cache(maxsize=None)
def _charts() -> tuple[Chart, ...]:
  return tuple(_build_charts())


def charts() -> list[Chart]:
  """The 48 tubes' charts (cached; see `_build_charts`)."""
  return list(_charts())


def _build_charts() -> list[Chart]:
  """The 48 tubes' charts: per Γ-orbit, the representative's first adapted frame and its images."""
  elems = joyce.group()
  out = []
  for k, orbit in enumerate(joyce.singular_set()["orbits"]):
    comp = orbit["representative"]
    fixed = tuple(i for i in range(7) if i not in comp.free)
    frame = adapted_frames(comp.free)[0]
    c = _centre(comp)
    seen = set()
    for h in elems:
      ch = np.mod(np.asarray(h.signs) * c + TWO_PI * np.asarray([float(b) for b in h.shift]),
                  TWO_PI)
      key = tuple(np.round(ch[list(fixed)] / (np.pi / 2)).astype(int) % 4)
      if key in seen:
        continue
      seen.add(key)
      out.append(Chart(k, comp.element, ch, np.diag(np.asarray(h.signs, float)) @ frame, fixed))
  return out


def _periodic(d):
  return np.mod(d + np.pi, TWO_PI) - np.pi


def min_torus_distance(chart_list=None) -> float:
  """Least distance in T⁷ (flat, 2π-periodic) between two of the fixed tori: over the coordinates
  fixed in both, the periodic differences of the fixed values (free ones can always be matched)."""
  cs = chart_list or charts()
  best = np.inf
  for a, b in itertools.combinations(cs, 2):
    common = sorted(set(a.fixed) & set(b.fixed))
    best = min(best, float(np.linalg.norm(_periodic(a.centre[common] - b.centre[common]))))
  return best


def smooth_step(s: jax.Array) -> jax.Array:
  """C^∞ step: 0 for s ≤ 0, 1 for s ≥ 1 (exp(−1/s) construction; safe under autodiff)."""
  def h(z):
    pos = z > 0
    return jnp.where(pos, jnp.exp(-1.0 / jnp.where(pos, z, 1.0)), 0.0)
  return h(s) / (h(s) + h(1.0 - s))


def potential_difference(t: float) -> Callable[[jax.Array], jax.Array]:
  """v -> D_t(v) = f_t(v) − v, written without cancellation:
  D_t = t⁴/(s + v) − t² log1p((t² + t⁴/(s + v)) / v), s = sqrt(v² + t⁴)."""
  def d(v):  # t may be traced (one compilation for every t); t = 0 gives exactly 0
    s = jnp.sqrt(v * v + t ** 4)
    q = t ** 4 / (s + v)
    return q - t * t * jnp.log1p((t * t + q) / v)
  return d


def glued_correction(t, r_inner: float, r_outer: float) -> Callable[[jax.Array], jax.Array]:
  """w = (y, u) [7] -> φ_t − φ0 in the chart's coordinates [35]: dy1∧(i/2)∂∂̄(χ D_t)."""
  diff = potential_difference(t)
  lo, hi = r_inner ** 2, r_outer ** 2

  def pot(u):
    v = jnp.sum(u * u)
    chi = smooth_step((hi - v) / (hi - lo))
    inside = v < hi
    return jnp.where(inside, chi * diff(jnp.where(inside, v, hi)), 0.0)

  omega = eh.kahler_form(pot)

  def corr(w):
    dy1 = jnp.zeros(7, w.dtype).at[0].set(1.0)
    return forms.wedge(dy1, 1, eh._two_form_7d(omega(w[3:])), 2)  # pylint: disable=protected-access
  return corr


@functools.lru_cache(maxsize=None)
def chart_arrays() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """(centres [48, 7], frames [48, 7, 7], fixed-coordinate masks [48, 7]) of `charts()`."""
  cs = charts()
  return (np.stack([c.centre for c in cs]), np.stack([c.frame for c in cs]),
          np.stack([np.isin(np.arange(7), c.fixed).astype(float) for c in cs]))


def nearest_chart(x: jax.Array) -> tuple[jax.Array, jax.Array]:
  """x [7] -> (frame P [7, 7], chart coordinates w = Pᵀ(x − c) [7]) of the nearest fixed torus."""
  centres, frames, mask = chart_arrays()
  dt = x.dtype
  d = jnp.mod(x[None, :] - jnp.asarray(centres, dt) + jnp.pi, TWO_PI) - jnp.pi  # [48, 7]
  j = jnp.argmin(jnp.sum(d * d * jnp.asarray(mask, dt), axis=1))
  p = jnp.asarray(frames, dt)[j]
  return p, p.T @ d[j]


@functools.lru_cache(maxsize=None)
def glued_phi(r_inner: float, r_outer: float) -> Callable[[jax.Array, jax.Array], jax.Array]:
  """(x [7], t) -> φ_t(x) [35]: the nearest torus's chart (exactly φ0 outside every tube)."""
  def phi(x, t):
    p, w = nearest_chart(x)
    local = glued_correction(t, r_inner, r_outer)(w)  # components in the chart's (y, u) coordinates
    return g2form.phi0(x.dtype) + g2form.pullback(local, p.T)  # to x: w = Pᵀ (x − c)
  return phi


@functools.lru_cache(maxsize=None)
def _torsion_batch(r_inner: float, r_outer: float):
  """jit(vmap) of g2form.torsion of φ_t over points, t an argument (one compilation)."""
  f = glued_phi(r_inner, r_outer)
  return jax.jit(jax.vmap(lambda x, t: g2form.torsion(lambda y: f(y, t))(x), in_axes=(0, None)))


@dataclasses.dataclass(frozen=True)
class GluedForm:
  """Joyce's glued closed G2-structure φ_t on M_t (see the module doc)."""
  t: float
  r_inner: float = 0.35
  r_outer: float = 0.7

  def __post_init__(self):
    if not (self.t >= 0 and 0 < self.r_inner < self.r_outer):
      raise ValueError(f"(t, r_inner, r_outer)={(self.t, self.r_inner, self.r_outer)!r} is invalid: "
                       "allowed t >= 0 and 0 < r_inner < r_outer")
    bound = min_torus_distance() / 2
    if self.r_outer >= bound:
      raise ValueError(f"r_outer={self.r_outer!r} is invalid: allowed < {bound:.4f} (half the "
                       "least distance between fixed tori; the tubes must be disjoint)")

  def phi_fn(self) -> Callable[[jax.Array], jax.Array]:
    """x [7] -> φ_t(x) [35] (the nearest torus's chart; exactly φ0 outside every tube)."""
    f = glued_phi(self.r_inner, self.r_outer)
    return lambda x: f(x, jnp.asarray(self.t, x.dtype))

  def chart_point(self, chart: Chart, y, u) -> np.ndarray:
    """The T⁷ point with chart coordinates (y [3], u [4])."""
    return np.mod(chart.centre + chart.frame @ np.concatenate([y, u]), TWO_PI)

  def torsion_profile(self, radii, direction=None, chart_index: int = 0, y=None) -> dict:
    """|dψ_t|²_g, |dφ_t|²_g and √det g at chart coordinates (y, r·direction) for radii [n]."""
    cs = charts()
    rng = np.random.default_rng(0)
    direction = rng.normal(size=4) if direction is None else np.asarray(direction, float)
    direction = direction / np.linalg.norm(direction)
    y = np.zeros(3) if y is None else np.asarray(y, float)
    xs = np.stack([self.chart_point(cs[chart_index], y, r * direction) for r in np.asarray(radii)])
    xs = jnp.asarray(xs)
    tor = _torsion_batch(self.r_inner, self.r_outer)(xs, jnp.asarray(self.t, xs.dtype))
    return {k: np.asarray(tor[k]) for k in ("dpsi_sq", "dphi_sq", "sqrt_det_g")}

  def norms(self, n_radial: int = 64) -> dict:
    """‖dψ_t‖_{L²(M_t)}, Vol(M_t), the normalised torsion and sup|dψ_t| over the annulus by
    Gauss–Legendre in r on [r_inner, r_outer] (the integrand is radial; outside it is exactly 0)."""
    nodes, weights = np.polynomial.legendre.leggauss(n_radial)
    half = 0.5 * (self.r_outer - self.r_inner)
    r = self.r_inner + half * (nodes + 1.0)
    prof = self.torsion_profile(r)
    shell = (TWO_PI ** 3) * 2.0 * np.pi ** 2 * r ** 3 * half * weights  # ∫_{T³} ∫_{S³} per dr
    n_tubes, order = len(charts()), len(joyce.group())
    per = n_tubes / order  # tubes per fundamental domain (48 / 8 = 6)
    dpsi_l2_sq = per * float(np.sum(shell * prof["dpsi_sq"] * prof["sqrt_det_g"]))
    flat = TWO_PI ** 7 / order
    vol = flat + per * float(np.sum(shell * (prof["sqrt_det_g"] - 1.0)))
    # Package definition (`objective.normalised_torsion`): mean density × Vol^(2/7) with the
    # coordinate measure normalised (T⁷/Γ flat = 1), as the Monte Carlo estimates use.
    return {"t": self.t, "dpsi_l2": float(np.sqrt(dpsi_l2_sq)), "volume": vol,
            "normalised_torsion": dpsi_l2_sq / vol * (vol / flat) ** (2.0 / 7.0),
            "dpsi_sup": float(np.sqrt(np.max(prof["dpsi_sq"]))),
            "dphi_sup": float(np.sqrt(np.max(prof["dphi_sq"])))}


def torsion_scaling(ts=(0.02, 0.04, 0.08, 0.16), r_inner: float = 0.35, r_outer: float = 0.7,
                    n_radial: int = 64) -> dict:
  """‖dψ_t‖_{L²}, sup|dψ_t| for several t and the fitted exponents p of c·t^p (log-log least squares)."""
  rows = [GluedForm(t, r_inner, r_outer).norms(n_radial) for t in ts]
  logt = np.log(np.asarray(ts))
  fit = lambda key: float(np.polyfit(logt, np.log([r[key] for r in rows]), 1)[0])
  return {"rows": rows, "exponent_l2": fit("dpsi_l2"), "exponent_sup": fit("dpsi_sup"),
          "r_inner": r_inner, "r_outer": r_outer}



def main(argv=None) -> dict:
  """python -m g2.resolution [--ts 0.01,0.02,0.04,0.08,0.16] [--r_inner 0.35] [--r_outer 0.7]
  [--n_radial 64] [--out FILE]: the atlas's facts and ‖dψ_t‖ of Joyce's glued φ_t vs t (float64).
  With --learn_t the arguments go to `g2.resolution_learning.main` (learning φ_t + dη on M_t)."""
  import argparse  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  import time  # pylint: disable=g-import-not-at-top
  argv = sys.argv[1:] if argv is None else list(argv)
  if any(a == "--learn_t" or a.startswith("--learn_t=") for a in argv):
    from g2 import resolution_learning  # pylint: disable=g-import-not-at-top
    return resolution_learning.main(argv)  # learning on M_t: see that module
  parser = argparse.ArgumentParser(description=main.__doc__.splitlines()[0])
  parser.add_argument("--ts", default="0.01,0.02,0.04,0.08,0.16")
  parser.add_argument("--r_inner", type=float, default=0.35)
  parser.add_argument("--r_outer", type=float, default=0.7)
  parser.add_argument("--n_radial", type=int, default=64)
  parser.add_argument("--out", default="")
  args = parser.parse_args(argv)
  jax.config.update("jax_enable_x64", True)
  t0 = time.process_time()
  cs = charts()
  ts = tuple(float(t) for t in args.ts.split(","))
  try:
    GluedForm(ts[0], args.r_inner, args.r_outer)
  except ValueError as e:
    raise SystemExit(f"g2.resolution: {e}") from None
  res = torsion_scaling(ts, args.r_inner, args.r_outer, args.n_radial)
  out = {"tubes_in_T7": len(cs), "singular_T3": len({c.orbit for c in cs}),
         "adapted_frames_per_torus": len(adapted_frames(tuple(
             i for i in range(7) if i not in cs[0].fixed))),
         "min_torus_distance": min_torus_distance(cs), **res}
  print(f"{out['tubes_in_T7']} tubes in T⁷ ({out['singular_T3']} singular T³ in T⁷/Γ), least "
        f"distance between fixed tori {out['min_torus_distance']:.4f}, cut-off annulus "
        f"[{args.r_inner}, {args.r_outer}]")
  print(f"{'t':>6} {'‖dψ_t‖_L2':>11} {'sup|dψ_t|':>11} {'sup|dφ_t|':>10} {'normalised torsion':>19} "
        f"{'Vol(M_t)':>10}")
  for r in res["rows"]:
    print(f"{r['t']:>6.3g} {r['dpsi_l2']:>11.4g} {r['dpsi_sup']:>11.4g} {r['dphi_sup']:>10.2g} "
          f"{r['normalised_torsion']:>19.4g} {r['volume']:>10.6g}")
  print(f"fitted exponents: ‖dψ_t‖_L2 ~ t^{res['exponent_l2']:.3f}, sup|dψ_t| ~ "
        f"t^{res['exponent_sup']:.3f} (expansion of D_t: t^4)")
  out["cpu_s"] = time.process_time() - t0
  from g2 import resolution_learning as rl  # pylint: disable=g-import-not-at-top
  return rl.write_out(out, args.out)


if __name__ == "__main__":
  main()
