"""Stage 4 of issue 16 (spectral part): the Hodge Laplacian on 2- and 3-forms of Joyce's resolution
M_t with the metric of a closed G2-structure (φ_t^G of `g2.resolution_green`, or φ_t), by the
package's Rayleigh–Ritz estimator (`g2.harmonic`: Gram M and Dirichlet D matrices, generalised
eigenproblem, round-off floor, gap count against the first non-zero scalar Ritz value λ_ref).

What changes against the orbifold (`joyce.orbifold_betti`) is the trial space and the quadrature.

Trial space. (i) Global: the Γ-averaged trig forms of the orbifold (`harmonic.trig_trial_fn`
with the axis frequencies, `joyce.average_forms`). They are smooth Γ-invariant forms on T⁷, so
they pull back to forms on M_t whose restriction to every exceptional sphere vanishes: they can
never represent the 12 new classes of H² (or the 36 of H³), however many frequencies are used.
(ii) Local, per singular T³ (orbit o = 0..11, supported in its 4 tubes |u| < r_cut, zero
elsewhere): radial profiles b_j = χ(v) (1 + v²/σ⁴)^(−p/2), v = |u|², σ ∈ `scales` (multiples of
t), p ∈ `powers`, times, in the tube's chart (y, u),
  2-forms: the 6 constant du^{ab}, the 6 (u·du)∧ι_u du^{ab} (SO(4)-equivariant, both
           orientations), the form ω_FS = (i/2)∂∂̄ log|u|² of the chart's complex structure, and
           the 3 dy^{ab}: 16 per profile;
  3-forms: dy^i ∧ (the 13 u-forms above) and dy^{123}: 40 per profile.
ω_FS is the only form here that is not pulled back from the orbifold: it is smooth on the
blow-up (the pull-back of the Fubini–Study form of the exceptional ℂP¹) and integrates to π over
the exceptional sphere. It is fixed by the resolution's smooth structure (the blow-up in the
chart's complex structure), not by the metric; no Eguchi–Hanson form or profile enters (the
harmonic form (i/2)∂∂̄h, h′ = 1/(v√(v² + t⁴)), is only approximately in the span). Every local
form is even under the stabiliser (y, u) ↦ (y, −u) and is carried to the other tubes of its orbit
by the charts (Γ-images), so it is Γ-invariant.

Quadrature (importance-weighted, normalised T⁷ measure; the integrand of Γ-invariant forms is
Γ-invariant): the complement of the tubes |u| < r_tube, uniform; and per orbit one tube (its four
tubes give equal integrals), with |u| log-uniform in [r_min, r_tube], weights ∝ |u|⁴. Local forms
of different orbits have disjoint supports, so each orbit's block is assembled from its own
stratum; the global block from all strata.
"""
from __future__ import annotations

import dataclasses
import itertools
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from g2 import eguchi_hanson as eh
from g2 import forms
from g2 import harmonic
from g2 import joyce
from g2 import resolution as res


@dataclasses.dataclass(frozen=True)
class SpectrumSettings:
  """Trial space and quadrature of `hodge_spectrum` (module doc)."""
  t: float = 0.16
  base: str = "green"  # metric of φ_t^G ("green") or of Joyce's glued φ_t ("glued")
  scales: tuple = (0.7, 1.4, 2.8)  # profile scales σ, in units of t
  powers: tuple = (1, 2, 3)  # profile decay exponents p: b = χ (1 + v²/σ⁴)^(−p/2)
  global_frequencies: int = 7  # axis frequencies e_m of the Γ-averaged trig space (0..7)
  r_cut_inner: float = 0.45  # profiles' cut-off χ: 1 inside, 0 outside r_cut
  r_cut: float = 0.75
  r_tube: float = 0.77  # tube stratum radius (< π/4: the tubes are disjoint)
  r_min: float = 0.05  # innermost sampled |u|, in units of t
  points_outside: int = 2048
  points_per_orbit: int = 1024
  chunk: int = 256
  gap_ratio: float = 10.0
  seed: int = 0
  tails: bool = False  # add the 12 / 36 tail forms of `g2.resolution_tails` to the global block
  tails_core: bool = True  # ... with their constant ASD part at the tori removed (that module)

  def validate(self) -> None:
    """Raises ValueError naming the field, its value and what is allowed."""
    def bad(name, allowed):
      raise ValueError(f"{name}={getattr(self, name)!r} is invalid: allowed {allowed}")
    if not (np.isfinite(self.t) and self.t > 0):
      bad("t", "a number > 0")
    if self.base not in ("green", "glued"):
      bad("base", "'green' or 'glued'")
    if not self.scales or not all(np.isfinite(s) and s > 0 for s in self.scales):
      bad("scales", "a non-empty tuple of numbers > 0")
    if not self.powers or not all(isinstance(p, int) and p >= 1 for p in self.powers):
      bad("powers", "a non-empty tuple of integers >= 1")
    if not (isinstance(self.global_frequencies, int) and 0 <= self.global_frequencies <= 7):
      bad("global_frequencies", "an integer in 0..7")
    bound = res.min_torus_distance() / 2
    if not 0 < self.r_cut_inner < self.r_cut <= self.r_tube < bound:
      bad("r_cut", f"0 < r_cut_inner < r_cut <= r_tube < {bound:.4f}")
    if not 0 < self.r_min * self.t < self.r_cut_inner:
      bad("r_min", "a number > 0 with r_min * t < r_cut_inner")
    for name in ("points_outside", "points_per_orbit", "chunk"):
      if not (isinstance(getattr(self, name), int) and getattr(self, name) >= 2):
        bad(name, "an integer >= 2")
    if not self.gap_ratio > 1:
      bad("gap_ratio", "a number > 1")
    for name in ("tails", "tails_core"):
      if not isinstance(getattr(self, name), bool):
        bad(name, "True or False")


# ------------------------------------------------------------------------------------------
# Trial forms


def _u_two_forms(u: jax.Array) -> jax.Array:
  """The 13 local u-forms [13, 4, 4] at u [4] (module doc): du^{ab}, (u·du)∧ι_u du^{ab}, ω_FS."""
  dt = u.dtype
  basis = []
  for a, b in itertools.combinations(range(4), 2):
    m = np.zeros((4, 4))
    m[a, b], m[b, a] = 1.0, -1.0
    basis.append(m)
  const = jnp.asarray(np.stack(basis), dt)  # [6, 4, 4]
  cu = jnp.einsum("nab,a->nb", const, u)  # ι_u c: components (ι_u c)_b = u^a c_ab
  radial = jnp.einsum("a,nb->nab", u, cu) - jnp.einsum("b,na->nab", u, cu)  # (u·du)∧ι_u c
  fs = eh.kahler_form(lambda w: jnp.log(jnp.sum(w * w)))(u)[None]
  return jnp.concatenate([const, radial, fs], axis=0)


def _chart_maps(k: int) -> np.ndarray:
  """[48, C(7,k), C(7,k)]: chart components (in dw, w = Pᵀ(x − c)) -> x components, per chart."""
  _, frames, _ = res.chart_arrays()
  eye = np.eye(forms.num_components(k))
  out = []
  for p in frames:
    t = np.asarray(forms.to_tensor(jnp.asarray(eye), k))
    # contract every slot with Pᵀ: T_x[.., i, ..] = Σ_a P[i, a] T_w[.., a, ..]
    for axis in range(1, k + 1):
      t = np.moveaxis(np.tensordot(t, p.T, axes=([axis], [0])), -1, axis)
    out.append(np.asarray(forms.from_tensor(jnp.asarray(t), k)))
  return np.stack(out)


def _chart_orbits() -> np.ndarray:
  return np.asarray([c.orbit for c in res.charts()])


def local_trial_fn(k: int, s: SpectrumSettings) -> tuple[Callable, int]:
  """((x [7], orbit) -> [n, C(7,k)], n): the local trial k-forms (k = 2, 3) of one singular T³
  (module doc; `orbit` may be traced), profile-major: the first q profiles are the leading rows."""
  centres, frames, mask = res.chart_arrays()
  maps = _chart_maps(k)
  orbits = _chart_orbits()
  profiles = [(sc * s.t, p) for p in s.powers for sc in s.scales]
  lo, hi = s.r_cut_inner ** 2, s.r_cut ** 2
  dy = np.eye(7)[:3]
  with jax.ensure_compile_time_eval():
    y_two = np.stack([np.asarray(forms.wedge(jnp.asarray(dy[a]), 1, jnp.asarray(dy[b]), 1))
                      for a, b in itertools.combinations(range(3), 2)])  # [3, 21]
    y_three = np.asarray(forms.wedge(jnp.asarray(y_two[0]), 2, jnp.asarray(dy[2]), 1))  # dy123

  def u_part(w):
    u = w[3:]
    u2 = _u_two_forms(u)  # [13, 4, 4]
    u7 = jnp.zeros((u2.shape[0], 7, 7), w.dtype).at[:, 3:, 3:].set(u2)
    two = forms.from_tensor(u7, 2)  # [13, 21]
    if k == 2:
      return jnp.concatenate([two, jnp.asarray(y_two, w.dtype)], 0)  # [16, 21]
    three = [forms.wedge(jnp.asarray(dy[i], w.dtype), 1, two, 2) for i in range(3)]
    return jnp.concatenate(three + [jnp.asarray(y_three, w.dtype)[None]], 0)  # [40, 35]

  n_per = 16 if k == 2 else 40

  def h_fn(x, orbit):
    dt = x.dtype
    d = jnp.mod(x[None, :] - jnp.asarray(centres, dt) + jnp.pi, res.TWO_PI) - jnp.pi
    j = jnp.argmin(jnp.sum(d * d * jnp.asarray(mask, dt), axis=1))
    w = jnp.asarray(frames, dt)[j].T @ d[j]
    v = jnp.sum(w[3:] ** 2)
    chi = res.smooth_step((hi - v) / (hi - lo))
    # smooth on the blow-up: functions of v² (v itself is only Lipschitz at the exceptional sphere)
    b = jnp.stack([chi * (1.0 + (v / (sc * sc)) ** 2) ** (-0.5 * p) for sc, p in profiles])  # [R]
    here = (jnp.asarray(orbits)[j] == orbit).astype(dt)
    local = (b[:, None, None] * u_part(w)[None]).reshape(len(profiles) * n_per, -1)
    return here * local @ jnp.asarray(maps, dt)[j]

  return h_fn, len(profiles) * n_per


def global_trial_fn(k: int, n_freq: int, s: SpectrumSettings | None = None) -> tuple[Callable, int]:
  """Γ-averaged trig trial k-forms with the first n_freq axis frequencies (nested), followed, for
  k = 2, 3 and s.tails, by the tail forms of `g2.resolution_tails` (12 / 36, Γ-invariant)."""
  freqs = harmonic.axis_frequencies(1, 7)[:n_freq]
  fn, n = harmonic.trig_trial_fn(k, freqs)
  avg = joyce.average_forms(k, fn)
  if s is None or not s.tails or k not in (2, 3):
    return avg, n
  from g2 import resolution_tails as rt  # pylint: disable=g-import-not-at-top
  tail, n_tail = rt.tail_trial_fn(k, s.t, s.r_cut_inner ** 2, s.r_cut ** 2, s.tails_core)
  return (lambda x: jnp.concatenate([avg(x), tail(x)], 0)), n + n_tail


# ------------------------------------------------------------------------------------------
# Quadrature


def _tube_volume_fraction(r_tube: float) -> float:
  """Volume of one tube T³ × B⁴(r) over Vol(T⁷) (flat; the tube metric has the same volume form)."""
  return (res.TWO_PI ** 3 * 0.5 * np.pi ** 2 * r_tube ** 4) / res.TWO_PI ** 7


def sample_outside(s: SpectrumSettings, rng) -> tuple[np.ndarray, np.ndarray]:
  """Uniform points of T⁷ outside every tube; weights sum to that region's volume fraction."""
  from g2 import resolution_learning as rl  # pylint: disable=g-import-not-at-top
  pts = []
  while sum(len(p) for p in pts) < s.points_outside:
    x = rng.uniform(0.0, res.TWO_PI, (2 * s.points_outside, 7))
    pts.append(x[rl.ResolutionLearner.distance_to_tori(x) >= s.r_tube])
  x = np.concatenate(pts)[:s.points_outside]
  frac = 1.0 - len(res.charts()) * _tube_volume_fraction(s.r_tube)
  return x, np.full(len(x), frac / len(x))


def sample_orbit_tube(s: SpectrumSettings, orbit: int, rng) -> tuple[np.ndarray, np.ndarray]:
  """Points in the first tube of `orbit` (|u| log-uniform) and weights summing (in expectation)
  to the volume fraction of the orbit's 4 tubes."""
  cs = res.charts()
  chart = next(c for c in cs if c.orbit == orbit)
  n_tubes = sum(c.orbit == orbit for c in cs)
  n = s.points_per_orbit
  r0, r1 = s.r_min * s.t, s.r_tube
  r = r0 * (r1 / r0) ** rng.uniform(size=n)
  dirs = rng.normal(size=(n, 4))
  dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
  y = rng.uniform(0.0, res.TWO_PI, (n, 3))
  w7 = np.concatenate([y, r[:, None] * dirs], 1)
  x = np.mod(chart.centre + w7 @ chart.frame.T, res.TWO_PI)
  # uniform-in-ball density 4r³/r1⁴ over the log-uniform density 1/(r log(r1/r0));
  # r < r0 is left out
  ratio = 4.0 * r ** 4 * np.log(r1 / r0) / r1 ** 4
  return x, n_tubes * _tube_volume_fraction(r1) * ratio / n


# ------------------------------------------------------------------------------------------
# Assembly and Rayleigh–Ritz


def weighted_sums_fn(phi_fn: Callable, fns: dict) -> Callable:
  """jit((x [P, 7], w [P], orbit) -> {k: (Σ w s G, Σ w s D, Σ w s)}) of the trial fields
  fns {k: (x, orbit) -> [n_k, C(7,k)]}: harmonic's per-point features with the importance weight
  folded into the volume density s (one compilation for every orbit)."""
  degrees = tuple(fns)

  @jax.jit
  def sums(xc, wc, o):
    geo = jax.vmap(lambda p: harmonic.point_geometry(phi_fn, degrees, p))(xc)
    geo = {**geo, "s": geo["s"] * wc}
    return {k: harmonic._sum_over_points(  # pylint: disable=protected-access
        *jax.vmap(lambda g, p, k=k: harmonic.form_features(lambda y: fns[k](y, o), k, g, p))(
            geo, xc), geo["s"]) for k in degrees}
  return sums


def _accumulate(sums: Callable, x: np.ndarray, w: np.ndarray, chunk: int, orbit: int = -1) -> dict:
  tot = None
  for i in range(0, len(x), chunk):
    out = sums(jnp.asarray(x[i:i + chunk]), jnp.asarray(w[i:i + chunk]), jnp.asarray(orbit))
    out = {k: [np.asarray(v, np.float64) for v in vals] for k, vals in out.items()}
    tot = out if tot is None else {k: [a + b for a, b in zip(tot[k], out[k])] for k in tot}
  return tot


def quadrature(s: SpectrumSettings) -> list[tuple[np.ndarray, np.ndarray, int]]:
  """The strata [(x [P, 7], importance weights [P], orbit)] of `assemble`: outside the tubes
  (orbit −1), then one tube per singular T³ (orbit 0..11); the same points for the same seed."""
  rng = np.random.default_rng([s.seed, 16])
  strata = [(*sample_outside(s, rng), -1)]
  for o in range(len(joyce.singular_set()["orbits"])):
    strata.append((*sample_orbit_tube(s, o, rng), o))
  return strata


def phi_fn_of(s: SpectrumSettings) -> Callable:
  from g2 import resolution_green  # pylint: disable=g-import-not-at-top
  f = (resolution_green.green_phi(0.35, 0.7) if s.base == "green" else res.glued_phi(0.35, 0.7))
  return lambda x: f(x, jnp.asarray(s.t, x.dtype))


def assemble(s: SpectrumSettings, degrees=(2, 3), log=print) -> dict:
  """Gram and Dirichlet matrices of the full trial space [global | local orbit 0 | … | 11] per
  degree, and of the Γ-averaged scalar trig space (degree 0, for λ_ref)."""
  phi_fn = phi_fn_of(s)
  glob = {k: global_trial_fn(k, s.global_frequencies, s) for k in (0,) + tuple(degrees)}
  glob[0] = global_trial_fn(0, 7)  # the scalar reference always uses all 7 axis frequencies
  n_glob = {k: n for k, (_, n) in glob.items()}
  loc = {k: local_trial_fn(k, s) for k in degrees}
  n_loc = {k: n for k, (_, n) in loc.items()}
  fns = {0: (lambda f: lambda p, o: f(p))(glob[0][0])}
  for k in degrees:
    fns[k] = (lambda g, l: lambda p, o: jnp.concatenate([g(p), l(p, o)], 0))(glob[k][0], loc[k][0])
  n_orb = len(joyce.singular_set()["orbits"])
  mats = {k: [np.zeros((n_glob[k] + n_orb * n_loc.get(k, 0),) * 2) for _ in range(2)]
          for k in glob}
  total_s = 0.0
  t0 = time.process_time()
  strata = quadrature(s)
  x, w, _ = strata[0]
  glob_sums = weighted_sums_fn(phi_fn, {k: (lambda f: lambda p, o: f(p))(f)
                                        for k, (f, _) in glob.items()})
  out = _accumulate(glob_sums, x, w, s.chunk)
  for k in glob:
    ng = n_glob[k]
    mats[k][0][:ng, :ng] += out[k][0]
    mats[k][1][:ng, :ng] += out[k][1]
  total_s += out[0][2]
  log(f"  outside the tubes: {len(x)} points, {time.process_time() - t0:.0f} CPU-s")
  tube_sums = weighted_sums_fn(phi_fn, fns)
  for x, w, o in strata[1:]:
    t1 = time.process_time()
    out = _accumulate(tube_sums, x, w, s.chunk, o)
    total_s += out[0][2]
    mats[0][0][:n_glob[0], :n_glob[0]] += out[0][0]
    mats[0][1][:n_glob[0], :n_glob[0]] += out[0][1]
    for k in degrees:
      ng, nl = n_glob[k], n_loc[k]
      idx = np.r_[np.arange(ng), ng + o * nl + np.arange(nl)]
      for j in range(2):
        mats[k][j][np.ix_(idx, idx)] += out[k][j]
    log(f"  tube of singular T³ {o}: {len(x)} points, {time.process_time() - t1:.0f} CPU-s")
  return {"matrices": {k: (m / total_s, d / total_s) for k, (m, d) in mats.items()},
          "n_global": n_glob, "n_local": n_loc, "n_orbits": n_orb, "volume_fraction": total_s}


def rung_indices(n_glob: int, n_loc: int, n_orb: int, global_rows: int,
                 local_rows: int) -> np.ndarray:
  """Rows of the nested sub-space: the first global_rows global forms, the first local_rows local
  forms of every orbit."""
  parts = [np.arange(global_rows)]
  parts += [n_glob + o * n_loc + np.arange(local_rows) for o in range(n_orb)]
  return np.concatenate(parts).astype(int)


def hodge_spectrum(s: SpectrumSettings, degrees=(2, 3), log=print, keep_forms: bool = False) -> dict:
  """Rayleigh–Ritz spectra and gap counts for k = 2, 3 on a ladder of nested trial spaces:
  orbifold forms only; + local forms with 1, half, all profiles; λ_ref from the Γ-averaged
  scalar trig space (module doc). keep_forms: also return, under "forms" (not JSON), the largest
  rung's Ritz values and coefficient vectors in the raw trial basis [n_trial, rank] (columns
  orthonormal for the Gram matrix `gram`), with the trial-space sizes `g2.resolution_yukawa` needs."""
  s.validate()
  cpu0 = time.process_time()
  asm = assemble(s, degrees, log)
  mats = asm["matrices"]
  lam0, _, _ = harmonic.rayleigh_ritz(*mats[0])
  reference = float(lam0[1])
  eps = float(np.finfo(np.float64).eps)
  n_prof = len(s.scales) * len(s.powers)
  out = {"settings": dataclasses.asdict(s), "reference": reference,
         "scalar_ritz": [float(v) for v in lam0[:8]], "degrees": {}}
  for k in degrees:
    ng, nl, no = asm["n_global"][k], asm["n_local"][k], asm["n_orbits"]
    per = nl // n_prof
    rungs = [(ng, 0)] + [(ng, q * per) for q in sorted({1, max(1, n_prof // 2), n_prof})]
    rows = []
    for g_rows, l_rows in rungs:
      idx = rung_indices(ng, nl, no, g_rows, l_rows)
      m, d = mats[k][0][np.ix_(idx, idx)], mats[k][1][np.ix_(idx, idx)]
      # Jacobi scaling (a change of basis): the trial forms' norms span many decades (core vs
      # tube), and rayleigh_ritz drops directions below 1e-7 of the largest Gram eigenvalue.
      diag = np.diag(m)
      scale = np.where(diag > 0, 1.0 / np.sqrt(np.where(diag > 0, diag, 1.0)), 0.0)
      m, d = m * np.outer(scale, scale), d * np.outer(scale, scale)
      lam, vecs, rank = harmonic.rayleigh_ritz(m, d)
      if keep_forms and l_rows == nl:
        out.setdefault("forms", {})[k] = {
            "eigenvalues": lam, "coefficients": scale[:, None] * vecs,
            "gram": mats[k][0][np.ix_(idx, idx)], "n_global": ng, "n_local": nl, "n_orbits": no,
            "volume_fraction": asm["volume_fraction"]}
      floor = harmonic.roundoff_floor(lam, eps, s.chunk)
      gap = harmonic.gap_count(lam, s.gap_ratio, floor, reference)
      rows.append({"global_forms": int(g_rows), "local_forms_per_T3": int(l_rows),
                   "profiles": int(l_rows // per), "trial_dim": int(len(idx)), "rank": rank,
                   "betti": gap["count"], "gap_ratio": gap["gap_ratio"],
                   "gap_after": gap["gap_after"], "gap_before": gap["gap_before"],
                   "largest_ratio_no_gap": gap.get("largest_ratio_no_gap"), "floor": floor,
                   "lowest_ritz": [float(v) for v in lam[:60]]})
      target = 12 if k == 2 else 43
      log(f"  k = {k}: {g_rows} global + 12 x {l_rows} local forms (rank {rank}): b{k} = "
          f"{gap['count']} (gap {gap['gap_ratio'] or 0:.3g}); Ritz "
          f"{', '.join(f'{v:.3g}' for v in lam[:3])} … "
          f"{', '.join(f'{v:.3g}' for v in lam[max(0, target - 2):target + 2])}")
    out["degrees"][k] = rows
  out["expected"] = joyce.betti_numbers()
  out["cpu_s"] = time.process_time() - cpu0
  return out


def add_arguments(p) -> None:
  """The SpectrumSettings flags (shared with `g2.resolution_yukawa`)."""
  d = SpectrumSettings()
  p.add_argument("--t", type=float, default=d.t)
  p.add_argument("--base", default=d.base)
  p.add_argument("--scales", default=",".join(str(v) for v in d.scales))
  p.add_argument("--powers", default=",".join(str(v) for v in d.powers))
  for name in ("global_frequencies", "points_outside", "points_per_orbit", "chunk", "seed"):
    p.add_argument(f"--{name}", type=int, default=getattr(d, name))
  for name in ("r_cut_inner", "r_cut", "r_tube", "r_min", "gap_ratio"):
    p.add_argument(f"--{name}", type=float, default=getattr(d, name))
  p.add_argument("--tails", action="store_true", help="add the tail forms (g2.resolution_tails)")
  p.add_argument("--tails_keep_core", dest="tails_core", action="store_false",
                 help="with --tails: keep the tail forms' constant ASD part at the tori")


def settings_from(args) -> SpectrumSettings:
  """SpectrumSettings from parsed `add_arguments` flags; a bad value is one line and exit 2."""
  from g2 import resolution_learning as rl  # pylint: disable=g-import-not-at-top
  try:
    scales = tuple(float(v) for v in args.scales.split(","))
    powers = tuple(int(v) for v in args.powers.split(","))
  except ValueError:
    rl.fail(f"--scales={args.scales!r} / --powers={args.powers!r} is invalid: allowed "
            "comma-separated numbers (scales) and integers (powers)")
  names = {f.name for f in dataclasses.fields(SpectrumSettings)} - {"scales", "powers"}
  s = SpectrumSettings(scales=scales, powers=powers,
                       **{k: v for k, v in vars(args).items() if k in names})
  try:
    s.validate()
  except ValueError as e:
    rl.fail(str(e))
  return s


def main(argv=None) -> dict:
  """python -m g2.resolution_spectrum [--t 0.16] [--base green] [--points_per_orbit 1024] …
  [--out FILE]: b2, b3 of M_t by Rayleigh–Ritz on the metric of φ_t^G (float64)."""
  from g2 import resolution_learning as rl  # pylint: disable=g-import-not-at-top
  p = rl._OneLineParser(main.__doc__.splitlines()[0]).parser  # pylint: disable=protected-access
  add_arguments(p)
  p.add_argument("--out", default="")
  args = p.parse_args(argv)
  s = settings_from(args)
  with jax.enable_x64(True):
    out = hodge_spectrum(s)
  return rl.write_out(out, args.out)


if __name__ == "__main__":
  main()
