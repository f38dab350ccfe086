"""Stage 4 of issue 16, second half, on the Ritz forms of `g2.resolution_spectrum`: Λ²₁₄ test of the
low 2-forms, whether φ_t lies in the low 3-form space, and the Yukawa couplings with two integrators.

Everything here is measured on the Ritz forms of the largest rung of the (not yet converged) trial
space of M_t with the metric of φ_t: the n2 = 12 lowest Ritz 2-forms ω_i and n3 = 43 lowest Ritz
3-forms Φ_k, L²(g)-orthonormal on the spectrum's own quadrature (`hodge_spectrum(keep_forms=True)`).
They are approximations of harmonic forms only as far as that trial space converged.

  * Λ²₁₄: T ω = ⋆(φ∧ω) has eigenvalue −1 on Λ²₁₄ and +2 on Λ²₇, so π₇ω = (Tω + ω)/3 and the
    relative defect ‖Tω + ω‖ / ‖ω‖ = 3 ‖π₇ω‖ / ‖ω‖ is 0 for a form in Λ²₁₄ and √3 ≈ 1.73 on
    average for a random 2-form (‖π₇ω‖²/‖ω‖² = 7/21). Controls: the next Ritz 2-forms (above the
    gap) and random unit combinations of all Ritz 2-forms. A second identity that uses the wedge
    and not the metric: pointwise ω∧ω∧φ = (2|π₇ω|² − |π₁₄ω|²) vol_g, so
    ∫ ω∧ω∧φ / ‖ω‖² = −1 + 3 ‖π₇ω‖²/‖ω‖² (`wedge_phi`); its −1 is the brief's "ω∧ω∧dy¹²³ ≈ −‖ω‖²"
    (in a tube, ω∧ω is a u-form and only dy¹²³ of φ pairs with it).
  * φ harmonic: R(φ) = (‖dφ‖² + ‖d⋆φ‖²)/‖φ‖² = (‖dφ‖² + ‖dψ‖²)/‖φ‖² from the torsion at each point;
    the fraction of ‖φ‖² in span(Φ_1..43), in the whole trial space, and the Rayleigh quotient
    of φ's projection on the trial space, Σ λ_k b_k² / Σ b_k² (b_k = ⟨Φ_k, φ⟩ over all Ritz forms).
  * Yukawa: Y_ijk = (1/Vol) ∫_{M_t} ω_i∧ω_j∧Φ_k (the dx¹…⁷ coefficient of the wedge, no √det g;
    `yukawa.point_integrand`), by integrator A = the spectrum's own stratified points, and B = an
    independent sample with a different stratification (each point in a random one of the orbit's
    4 tubes, |u| from a half log-uniform, half uniform-in-ball mixture down to `r_min_b`·t, its
    own seed and sizes). Error bars: the Monte Carlo standard error per stratum, added in
    quadrature. A is the sample on which the forms were made orthonormal (a selection effect); B
    is not. Checks that can fail: A vs B within error bars; symmetry in i, j; Y_ij(φ) =
    ∫ ω_i∧ω_j∧φ against Σ_k Y_ijk b_k (φ's projection on the 43); entries with i, j at different
    singular T³ (disjoint supports). Basis-invariant summary: mode-n singular values and a Tucker
    decomposition (`g2.yukawa`).

Normalisation: all averages are over M_t with vol_g / Vol (the spectrum's matrices), i.e. Σ w f /
Σ w s with the spectrum's Σ w s; forms have unit mean square, φ enters as φ/√7 (|φ|²_g = 7).
"""
from __future__ import annotations

import dataclasses
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from g2 import forms
from g2 import g2form
from g2 import resolution as res
from g2 import resolution_spectrum as rs
from g2 import form_ops
from g2 import yukawa


@dataclasses.dataclass(frozen=True)
class YukawaSettings:
  """What `measure` computes on top of a `rs.SpectrumSettings` run."""
  n2: int = 12  # low Ritz 2-forms (b2 of M_t)
  n3: int = 43  # low Ritz 3-forms (b3 of M_t)
  controls: int = 12  # control 2-forms: the next Ritz 2-forms and as many random unit combinations
  points_outside_b: int = 512  # integrator B: uniform points outside the tubes
  points_per_orbit_b: int = 512  # integrator B: points per singular T³
  r_min_b: float = 0.02  # integrator B: innermost sampled |u|, in units of t
  seed_b: int = 1
  tucker_rank: tuple = (4, 4, 8)

  def validate(self) -> None:
    def bad(name, allowed):
      raise ValueError(f"{name}={getattr(self, name)!r} is invalid: allowed {allowed}")
    for name in ("n2", "n3", "controls", "points_outside_b", "points_per_orbit_b"):
      if not (isinstance(getattr(self, name), int) and getattr(self, name) >= 1):
        bad(name, "an integer >= 1")
    if not self.r_min_b > 0:
      bad("r_min_b", "a number > 0")


# ------------------------------------------------------------------------------------------
# Pointwise algebra


def lambda2_terms(phi: jax.Array, omega: jax.Array, g, g_inv, sqrt_det_g) -> dict:
  """At one point, for 2-forms omega [R, 21]: |ω|²_g, |⋆(φ∧ω) + ω|²_g = 9|π₇ω|²_g [R], and the
  dx¹…⁷ coefficients of ω_i∧ω_j∧φ [R, R] (a density: = (2|π₇ω|² − |π₁₄ω|²)√det g on the diagonal)."""
  md = dict(g_inv=g_inv, sqrt_det_g=sqrt_det_g)
  t_omega = forms.hodge_star(forms.wedge(phi, 3, omega, 2), 5, g, **md)  # [R, 21]
  defect = t_omega + omega
  four = jnp.asarray(form_ops.wedge_dense(2, 2), omega.dtype)  # [21, 21, 35]
  top = jnp.asarray(form_ops.wedge_dense(4, 3)[..., 0], omega.dtype)  # [35, 35]
  wedge_phi = jnp.einsum("ia,jb,abd,dc,c->ij", omega, omega, four, top, phi)
  return {"norm_sq": forms.norm_sq(omega, 2, g, **md), "defect_sq": forms.norm_sq(defect, 2, g, **md),
          "wedge_phi": wedge_phi}


def sample_orbit_mixture(s: rs.SpectrumSettings, ys: YukawaSettings, orbit: int, rng):
  """Integrator B's tube stratum: points in a uniformly chosen tube of `orbit`, |u| from
  ½ log-uniform on [r_min_b·t, r_tube] + ½ uniform in the ball B⁴(r_tube); weights summing (in
  expectation) to the orbit's tube volume fraction. Returns (x [n, 7], w [n])."""
  cs = [c for c in res.charts() if c.orbit == orbit]
  n, r1 = ys.points_per_orbit_b, s.r_tube
  r0 = ys.r_min_b * s.t
  use_log = rng.uniform(size=n) < 0.5
  r = np.where(use_log, r0 * (r1 / r0) ** rng.uniform(size=n), r1 * rng.uniform(size=n) ** 0.25)
  dirs = rng.normal(size=(n, 4))
  dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
  y = rng.uniform(0.0, res.TWO_PI, (n, 3))
  pick = rng.integers(len(cs), size=n)
  w7 = np.concatenate([y, r[:, None] * dirs], 1)
  x = np.stack([np.mod(cs[j].centre + cs[j].frame @ p, res.TWO_PI) for j, p in zip(pick, w7)])
  p_ball = 4.0 * r ** 3 / r1 ** 4
  p_log = np.where(r >= r0, 1.0 / (r * np.log(r1 / r0)), 0.0)
  vol = len(cs) * rs._tube_volume_fraction(r1)  # pylint: disable=protected-access
  return x, vol * p_ball / (0.5 * p_log + 0.5 * p_ball) / n


def quadrature_b(s: rs.SpectrumSettings, ys: YukawaSettings):
  """Integrator B's strata [(x, w, orbit)] (orbit −1: outside the tubes)."""
  rng = np.random.default_rng([ys.seed_b, 61])
  s_out = dataclasses.replace(s, points_outside=ys.points_outside_b)
  strata = [(*rs.sample_outside(s_out, rng), -1)]
  n_orb = len({c.orbit for c in res.charts()})
  return strata + [(*sample_orbit_mixture(s, ys, o, rng), o) for o in range(n_orb)]


# ------------------------------------------------------------------------------------------
# Sums over a quadrature


def _split(coeffs: np.ndarray, n_glob: int, n_loc: int, n_orb: int):
  """Coefficients [n_glob + n_orb n_loc, R] -> (global [n_glob, R], local [n_orb, n_loc, R])."""
  return coeffs[:n_glob], coeffs[n_glob:].reshape(n_orb, n_loc, -1)


def sums_fn(s: rs.SpectrumSettings, c2: np.ndarray, c3: np.ndarray, n2: int, sizes: dict) -> Callable:
  """jit((x [P, 7], w [P], orbit) -> dict of weighted sums) for the 2-forms C2 [n_trial2, R2] (the
  first n2 enter Y) and 3-forms C3 [n_trial3, n3] of the trial space (`rs.local_trial_fn`,
  `rs.global_trial_fn`); also ⟨h_a, φ⟩ for every raw trial 3-form h_a (global rows, local rows)."""
  phi_fn = rs.phi_fn_of(s)
  g2f, _ = rs.global_trial_fn(2, s.global_frequencies, s)
  g3f, _ = rs.global_trial_fn(3, s.global_frequencies, s)
  l2f, _ = rs.local_trial_fn(2, s)
  l3f, _ = rs.local_trial_fn(3, s)
  c2g, c2l = _split(c2, sizes[2]["n_global"], sizes[2]["n_local"], sizes[2]["n_orbits"])
  c3g, c3l = _split(c3, sizes[3]["n_global"], sizes[3]["n_local"], sizes[3]["n_orbits"])
  torsion = g2form.torsion(phi_fn)

  def point(x, o):
    dt = x.dtype
    phi = phi_fn(x)
    g, g_inv, sq = g2form.metric_data_from_phi(phi)
    md = dict(g_inv=g_inv, sqrt_det_g=sq)
    oc = jnp.maximum(o, 0)  # outside (o = −1) the local forms are 0 anyway
    h3g, h3l = g3f(x), l3f(x, o)
    omega = jnp.asarray(c2g, dt).T @ g2f(x) + jnp.asarray(c2l, dt)[oc].T @ l2f(x, o)  # [R2, 21]
    big = jnp.asarray(c3g, dt).T @ h3g + jnp.asarray(c3l, dt)[oc].T @ h3l  # [n3, 35]
    lam = lambda2_terms(phi, omega, g, g_inv, sq)
    tor = torsion(x)
    phi_up = forms.raise_indices(phi, 3, g, **md)
    low = omega[:n2]
    return {"s": sq, "gram2": jnp.einsum("ia,ja->ij", omega, forms.raise_indices(omega, 2, g, **md)),
            "defect_sq": lam["defect_sq"], "wedge_phi": lam["wedge_phi"],
            "gram3": jnp.einsum("ka,la->kl", big, forms.raise_indices(big, 3, g, **md)),
            "phi_sq": jnp.dot(phi, phi_up), "phi_b_global": h3g @ phi_up, "phi_b_local": h3l @ phi_up,
            "torsion": tor["dphi_sq"] + tor["dpsi_sq"],
            "yukawa": yukawa.point_integrand(low[None], big[None])[0]}

  density = ("yukawa", "wedge_phi")  # top-form coefficients: already densities (no √det g)

  @jax.jit
  def sums(xc, wc, o):
    vals = jax.vmap(lambda p: point(p, o))(xc)
    out = {}
    for key, v in vals.items():
      wt = wc if key in density or key == "s" else wc * vals["s"]
      out[key] = jnp.tensordot(wt, v, axes=1) if key != "s" else jnp.sum(wc * v)
    out["yukawa_sq"] = jnp.tensordot(wc ** 2, vals["yukawa"] ** 2, axes=1)
    return out
  return sums


def integrate(sums: Callable, strata, chunk: int, n_trial3: tuple, log=print) -> dict:
  """Σ over strata of the per-point sums; the Yukawa sum's Monte Carlo variance per stratum
  (n Σ(wf)² − (Σwf)²)/(n − 1), added over strata. ⟨h_a, φ⟩ lands in the full trial index."""
  ng3, nl3 = n_trial3
  tot, var = {}, 0.0
  b = np.zeros(ng3 + nl3 * (len(strata) - 1))
  for x, w, o in strata:
    t0 = time.process_time()
    part = None
    for i in range(0, len(x), chunk):
      out = sums(jnp.asarray(x[i:i + chunk]), jnp.asarray(w[i:i + chunk]), jnp.asarray(o))
      out = {k: np.asarray(v, np.float64) for k, v in out.items()}
      part = out if part is None else {k: part[k] + out[k] for k in part}
    n = len(x)
    var = var + (n * part["yukawa_sq"] - part["yukawa"] ** 2) / max(n - 1, 1)
    b[:ng3] += part.pop("phi_b_global")
    loc = part.pop("phi_b_local")
    if o >= 0:
      b[ng3 + o * nl3: ng3 + (o + 1) * nl3] += loc
    for k, v in part.items():
      tot[k] = tot.get(k, 0.0) + v
    log(f"    stratum {o:>2}: {n} points, {time.process_time() - t0:.0f} CPU-s")
  tot["phi_b"] = b
  tot["yukawa_var"] = np.maximum(var, 0.0)
  return tot


# ------------------------------------------------------------------------------------------
# Summaries


def summarise(tot: dict, norm: float, lam3: np.ndarray, c3_all: np.ndarray, n2: int, n3: int,
              orthonormal: bool) -> dict:
  """The integrator's numbers (normalised by the spectrum's Σ w s = `norm`). orthonormal: the
  points are the spectrum's own (the Ritz forms are orthonormal there, so φ's projection on the
  whole trial space is Σ_k b_k² over all Ritz forms); otherwise only the low-span fraction, with
  this sample's Gram matrix of the n3 forms."""
  gram2 = tot["gram2"] / norm
  nsq = np.diag(gram2)
  rel = np.sqrt(tot["defect_sq"] / norm / nsq)
  wedge_phi = tot["wedge_phi"] / norm  # ∫ ω_i∧ω_j∧φ / Vol
  phi_sq = tot["phi_sq"] / norm
  b_all = c3_all.T @ tot["phi_b"] / norm  # ⟨Φ_k, φ⟩ for all Ritz 3-forms
  gram3 = tot["gram3"] / norm
  b_low = b_all[:n3]
  y = tot["yukawa"] / norm
  y_se = np.sqrt(tot["yukawa_var"]) / norm
  # φ's component in span(Φ_1..n3), with this sample's Gram matrix (= identity on the spectrum's)
  coef = np.linalg.solve(gram3, b_low)
  outside_low = 1.0 - float(b_low @ coef) / phi_sq
  out = {
      "gram2_diag": nsq, "gram2_offdiag_max": float(np.max(np.abs(gram2 - np.diag(nsq)))),
      "lambda7_rel_defect": rel, "lambda7_fraction": rel ** 2 / 9.0,
      "wedge_phi_diag_over_norm": np.diag(wedge_phi) / nsq,
      # pointwise ω∧ω∧φ = (2|π₇ω|² − |π₁₄ω|²) vol: ∫ω∧ω∧φ/‖ω‖² = −1 + 3 f₇ (wedge vs metric)
      "wedge_identity_residual_max": float(np.max(np.abs(np.diag(wedge_phi) / nsq
                                                         - (-1.0 + rel ** 2 / 3.0)))),
      "gram3_max_dev_from_identity": float(np.max(np.abs(gram3 - np.eye(n3)))),
      "phi_mean_sq": float(phi_sq), "phi_rayleigh_quotient": float(tot["torsion"] / norm / phi_sq),
      "phi_fraction_outside_low": outside_low,
      "yukawa": y, "yukawa_se": y_se, "wedge_phi_low": wedge_phi[:n2, :n2],
      # Σ_k Y_ijk c_k: ∫ ω_i∧ω_j∧(projection of φ on the n3 forms); = ∫ ω_i∧ω_j∧φ if φ is in the span
      "wedge_phi_from_yukawa": np.einsum("ijk,k->ij", y, coef)}
  if orthonormal:
    w = b_all ** 2 / phi_sq
    high = lam3[n3:len(b_all)]
    out.update({
        "phi_fraction_outside_trial_space": float(1.0 - np.sum(w)),
        "phi_projection_rayleigh": float(np.sum(lam3[:len(b_all)] * w) / np.sum(w)),
        "phi_fraction_by_ritz_band": {"low (first n3)": float(np.sum(w[:n3])),
                                      "next, λ < 100": float(np.sum(w[n3:][high < 100])),
                                      "λ >= 100": float(np.sum(w[n3:][high >= 100]))}})
  return out


def compare(a: dict, b: dict, orbit_of: np.ndarray) -> dict:
  """A vs B on Y, and the structural checks on A."""
  ya, yb, sa, sb = a["yukawa"], b["yukawa"], a["yukawa_se"], b["yukawa_se"]
  scale = float(np.max(np.abs(ya)))
  se = np.sqrt(sa ** 2 + sb ** 2)
  live = se > 1e-12 * scale
  z = np.abs(ya - yb)[live] / se[live]
  same = orbit_of[:, None] == orbit_of[None, :]
  big = np.abs(ya) > 0.1 * scale
  return {
      "max_abs_Y": scale, "entries_with_error_bar": int(live.sum()),
      "z_max": float(z.max()) if z.size else None,
      "fraction_within_2se": float(np.mean(z <= 2)) if z.size else None,
      "fraction_within_3se": float(np.mean(z <= 3)) if z.size else None,
      "large_entries_(>0.1 max)": int(big.sum()),
      "large_entries_rel_diff_max": float(np.max(np.abs(ya - yb)[big] / np.abs(ya)[big])),
      "large_entries_rel_se_A_median": float(np.median(sa[big] / np.abs(ya)[big])),
      "symmetry_ij_max_rel": float(np.max(np.abs(ya - ya.transpose(1, 0, 2))) / scale),
      "different_T3_max_rel": float(np.max(np.abs(ya[~same])) / scale) if np.any(~same) else None,
      "mode_singular_values_A": [v.tolist() for v in yukawa.mode_singular_values(ya)],
      "mode_singular_values_B": [v.tolist() for v in yukawa.mode_singular_values(yb)],
  }


def localisation(forms2: dict, n: int) -> tuple[np.ndarray, np.ndarray]:
  """(orbit carrying most of each of the first n Ritz 2-forms, that orbit's share of ‖ω‖²),
  from the spectrum's Gram matrix blocks."""
  c, m = forms2["coefficients"][:, :n], forms2["gram"]
  ng, nl, no = forms2["n_global"], forms2["n_local"], forms2["n_orbits"]
  share = np.zeros((no, n))
  for o in range(no):
    idx = ng + o * nl + np.arange(nl)
    share[o] = np.einsum("ai,ab,bi->i", c[idx], m[np.ix_(idx, idx)], c[idx])
  total = np.einsum("ai,ab,bi->i", c, m, c)
  return np.argmax(share, 0), np.max(share, 0) / total


LABEL = ("on the Ritz forms of the not-yet-converged trial space of phi_t (g2.resolution_spectrum, "
         "largest rung), not converged harmonic forms")


def _floats(a) -> list:
  return np.round(np.asarray(a, np.float64), 10).tolist()


def measure(s: rs.SpectrumSettings, ys: YukawaSettings, log=print) -> tuple[dict, dict]:
  """The spectrum (as `rs.hodge_spectrum`), then the Λ²₁₄ test, φ's harmonicity and Y by the two
  integrators (module doc). Returns (JSON dict, {"Y_A", "Y_B", "se_A", "se_B"} arrays)."""
  s.validate()
  ys.validate()
  cpu0 = time.process_time()
  spec = rs.hodge_spectrum(s, log=log, keep_forms=True)
  f2, f3 = spec["forms"][2], spec.pop("forms")[3]
  cpu_spec = time.process_time() - cpu0
  lam2, lam3 = f2["eigenvalues"], f3["eigenvalues"]
  n2, n3, nc = ys.n2, ys.n3, ys.controls
  if len(lam2) < n2 + nc or len(lam3) <= n3:
    raise ValueError(f"trial space too small: rank {len(lam2)} (2-forms), {len(lam3)} (3-forms) for "
                     f"n2 + controls = {n2 + nc}, n3 = {n3}")
  rng = np.random.default_rng([ys.seed_b, 7])
  r = rng.normal(size=(len(lam2), nc))
  random2 = f2["coefficients"] @ (r / np.linalg.norm(r, axis=0))  # unit norm: Ritz vectors are orthonormal
  c2 = np.concatenate([f2["coefficients"][:, :n2 + nc], random2], 1)
  c3_all = f3["coefficients"]
  sizes = {k: {key: f[key] for key in ("n_global", "n_local", "n_orbits")} for k, f in ((2, f2), (3, f3))}
  sums = sums_fn(s, c2, c3_all[:, :n3], n2, sizes)
  n_trial3 = (f3["n_global"], f3["n_local"])
  norm = f2["volume_fraction"]
  t0 = time.process_time()
  log("  integrator A (the spectrum's points):")
  tot_a = integrate(sums, rs.quadrature(s), s.chunk, n_trial3, log)
  cpu_a = time.process_time() - t0
  log("  integrator B (independent, differently stratified):")
  tot_b = integrate(sums, quadrature_b(s, ys), s.chunk, n_trial3, log)
  cpu_b = time.process_time() - t0 - cpu_a
  sa = summarise(tot_a, norm, lam3, c3_all, n2, n3, orthonormal=True)
  sb = summarise(tot_b, norm, lam3, c3_all, n2, n3, orthonormal=False)
  orbit_of, share = localisation(f2, n2)
  cmp = compare(sa, sb, orbit_of)
  groups = {"low": slice(0, n2), "next_ritz": slice(n2, n2 + nc), "random": slice(n2 + nc, None)}

  def asd(summary):
    return {"wedge_identity_residual_max": summary["wedge_identity_residual_max"], **{name: {"rel_defect": _floats(summary["lambda7_rel_defect"][sl]),
                   "lambda7_fraction": _floats(summary["lambda7_fraction"][sl]),
                   "wedge_phi_over_norm_sq": _floats(summary["wedge_phi_diag_over_norm"][sl]),
                   "norm_sq": _floats(summary["gram2_diag"][sl])}
            for name, sl in groups.items()}}

  def phi_part(summary):
    keys = ("phi_mean_sq", "phi_rayleigh_quotient", "phi_fraction_outside_low",
            "phi_fraction_outside_trial_space", "phi_projection_rayleigh", "phi_fraction_by_ritz_band",
            "gram3_max_dev_from_identity")
    return {k: summary[k] for k in keys if k in summary}

  def diag(y):
    return np.stack([y[i, i] for i in range(n2)])  # [n2, n3]: Y_iik (i ≠ j vanish, see checks)

  recon = {name: {"wedge_phi_direct_diag": _floats(np.diag(sm["wedge_phi_low"])),
                  "from_yukawa_and_projection_diag": _floats(np.diag(sm["wedge_phi_from_yukawa"]))}
           for name, sm in (("A", sa), ("B", sb))}
  out = {
      "label": LABEL, "settings": dataclasses.asdict(s), "yukawa_settings": dataclasses.asdict(ys),
      "spectrum": spec, "ritz2_low": _floats(lam2[:n2]), "ritz2_controls": _floats(lam2[n2:n2 + nc]),
      "ritz3_low": _floats(lam3[:n3]), "ritz3_first_high": float(lam3[n3]),
      "localisation_2forms": {"orbit": orbit_of.tolist(), "share_of_norm_sq": _floats(share)},
      "lambda2_14": {"A": asd(sa), "B": asd(sb)},
      "phi_harmonic": {"A": phi_part(sa), "B": phi_part(sb)},
      "yukawa": {"measure": "(1/Vol) ∫_{M_t} ω_i∧ω_j∧Φ_k, unit mean-square forms", **cmp,
                 "tucker": yukawa.tucker_summary(sa["yukawa"], ys.tucker_rank),
                 "wedge_phi_reconstruction": recon,
                 "Y_iik_A": _floats(diag(sa["yukawa"])), "se_iik_A": _floats(diag(sa["yukawa_se"])),
                 "Y_iik_B": _floats(diag(sb["yukawa"])), "se_iik_B": _floats(diag(sb["yukawa_se"]))},
      "points": {"A": int(sum(len(x) for x, _, _ in rs.quadrature(s))),
                 "B": ys.points_outside_b + 12 * ys.points_per_orbit_b},
      "cpu_s": {"spectrum": cpu_spec, "integrator_A": cpu_a, "integrator_B": cpu_b,
                "total": time.process_time() - cpu0},
  }
  arrays = {"Y_A": sa["yukawa"], "Y_B": sb["yukawa"], "se_A": sa["yukawa_se"], "se_B": sb["yukawa_se"]}
  return out, arrays


def main(argv=None) -> dict:
  """python -m g2.resolution_yukawa [g2.resolution_spectrum flags] [--n2 12] [--n3 43] … [--out FILE]:
  Λ²₁₄ test, φ's harmonicity and the Yukawa couplings on the Ritz forms of the spectrum run."""
  import json  # pylint: disable=g-import-not-at-top
  import os  # pylint: disable=g-import-not-at-top
  from g2 import resolution_learning as rl  # pylint: disable=g-import-not-at-top
  p = rl._OneLineParser(main.__doc__.splitlines()[0]).parser  # pylint: disable=protected-access
  rs.add_arguments(p)
  d = YukawaSettings()
  for name in ("n2", "n3", "controls", "points_outside_b", "points_per_orbit_b", "seed_b"):
    p.add_argument(f"--{name}", type=int, default=getattr(d, name))
  p.add_argument("--r_min_b", type=float, default=d.r_min_b)
  p.add_argument("--out", default="")
  args = p.parse_args(argv)
  s = rs.settings_from(args)
  ys = YukawaSettings(**{k: getattr(args, k) for k in ("n2", "n3", "controls", "points_outside_b",
                                                        "points_per_orbit_b", "seed_b", "r_min_b")})
  try:
    ys.validate()
  except ValueError as e:
    rl.fail(str(e))
  with jax.enable_x64(True):
    out, arrays = measure(s, ys)
  _print(out)
  if args.out:
    with open(args.out, "w") as f:
      json.dump(out, f, indent=1, default=float)
    np.savez(os.path.splitext(args.out)[0] + "_tensor.npz", **arrays)
  return out


def _print(out: dict) -> None:
  print(f"[{LABEL}]")
  for name in ("A", "B"):
    a = out["lambda2_14"][name]
    print(f"Λ²₁₄ ({name}): ‖⋆(φ∧ω)+ω‖/‖ω‖ low {min(a['low']['rel_defect']):.3g}…"
          f"{max(a['low']['rel_defect']):.3g}, next Ritz {min(a['next_ritz']['rel_defect']):.3g}…"
          f"{max(a['next_ritz']['rel_defect']):.3g}, random {min(a['random']['rel_defect']):.3g}…"
          f"{max(a['random']['rel_defect']):.3g}; ∫ω∧ω∧φ̂/‖ω‖² low "
          f"{min(a['low']['wedge_phi_over_norm_sq']):.4g}…{max(a['low']['wedge_phi_over_norm_sq']):.4g}")
    ph = out["phi_harmonic"][name]
    print(f"φ ({name}): R(φ) = {ph['phi_rayleigh_quotient']:.3g}, fraction of ‖φ‖² outside the low "
          f"span {ph['phi_fraction_outside_low']:.3g}, outside the trial space "
          f"{ph.get('phi_fraction_outside_trial_space', float('nan')):.3g}, Rayleigh quotient of the "
          f"projection {ph.get('phi_projection_rayleigh', float('nan')):.3g}; wedge identity residual "
          f"{a['wedge_identity_residual_max']:.2g}")
  y = out["yukawa"]
  print(f"Y: max |Y| {y['max_abs_Y']:.4g}; A vs B: z_max {y['z_max']}, within 2 se "
        f"{y['fraction_within_2se']}, within 3 se {y['fraction_within_3se']}; symmetry "
        f"{y['symmetry_ij_max_rel']:.2g}; different T³ {y['different_T3_max_rel']}")
  print("mode-n singular values (A):", [np.round(v[:6], 5).tolist() for v in y["mode_singular_values_A"]])
  print(f"first high 3-form Ritz value {out['ritz3_first_high']:.4g}; CPU-s {out['cpu_s']}")


if __name__ == "__main__":
  main()
