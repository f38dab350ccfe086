"""Issue 16 end to end at one resolution scale t (configs/g2.py:joyce_quick / joyce), run by
`python -m g2.main --config configs/g2.py:joyce_quick --workdir DIR`: stage 1 (Γ's facts, the
orbifold's spectral b2/b3), stage 2 (Eguchi–Hanson × ℝ³ torsion and its L²-harmonic ASD form),
stage 3 (Joyce's glued φ_t: ‖dψ_t‖ vs t by radial quadrature, the Green's-function correction φ_t^G,
the torsion per singular T³), stage 4 (the Hodge spectrum of M_t, `g2.resolution_spectrum`).
Every number comes from the stage modules; this file only wires them to the config and writes
DIR/results/joyce.json (and figures). Float64 throughout (scoped)."""
from __future__ import annotations

import json
import os
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from common import config_validation as cv
from g2 import eguchi_hanson as eh
from g2 import forms, g2form, joyce
from g2 import resolution as res
from g2 import resolution_green as rg
from g2 import resolution_spectrum as rs


def validate(config: ml_collections.ConfigDict) -> None:
  """One ConfigError naming the field, its value and what is allowed."""
  j = "joyce."
  cv.check_range(config, j + "t", 0.0, 0.4, lo_open=True)
  cv.check_in(config, j + "spectrum_base", ("glued", "green"))
  for f in ("orbifold_grid_n", "eh_points", "n_radial", "green_points", "region_points",
            "spectrum_points_outside", "spectrum_points_per_orbit", "spectrum_chunk"):
    cv.check_int(config, j + f, min_value=2)
  cv.check_int(config, j + "spectrum_global_frequencies", min_value=0, max_value=7)
  for f, lo in (("orbifold_sizes", 0), ("spectrum_powers", 1)):
    v = tuple(cv.get_field(config, j + f))
    cv.check(bool(v) and all(isinstance(a, int) and a >= lo for a in v), j + f, v,
             f"a non-empty tuple of integers >= {lo}")
  for f in ("torsion_ts", "spectrum_scales"):
    v = tuple(cv.get_field(config, j + f))
    cv.check(bool(v) and all(isinstance(a, float) and 0 < a for a in v), j + f, v,
             "a non-empty tuple of numbers > 0")
  cv.check(all(t < 0.4 for t in config.joyce.torsion_ts), j + "torsion_ts",
           tuple(config.joyce.torsion_ts), "numbers in (0, 0.4)")
  cv.check_positive(config, j + "spectrum_r_min")


def stage_orbifold(c) -> dict:
  sing = joyce.singular_set()
  out = {"group_order": len(joyce.group()), "singular_T3": len(sing["orbits"]),
         "preserve_phi0": all(joyce.preserves_phi0(g) for g in joyce.group()),
         "fixed_sets_disjoint": joyce.fixed_sets_disjoint(), "betti": joyce.betti_numbers()}
  out["spectral"] = joyce.orbifold_betti(joyce.invariant_conformal_phi(0.2), c.orbifold_grid_n,
                                         tuple(c.orbifold_sizes))
  return out


def stage_local_model(c) -> dict:
  """φ of ℝ³ × EH at scale a = t on random points with |u| ∈ [t, 4t]: torsion, and the ASD form."""
  rng = np.random.default_rng(0)
  d = rng.normal(size=(c.eh_points, 4))
  u = d / np.linalg.norm(d, axis=1, keepdims=True) * rng.uniform(c.t, 4 * c.t, (c.eh_points, 1))
  x = jnp.asarray(np.concatenate([rng.uniform(-1, 1, (c.eh_points, 3)), u], 1))
  tor = jax.vmap(g2form.torsion(eh.phi(c.t)))(x)
  alpha_fn = eh.harmonic_asd_form(c.t)
  d_alpha = jax.vmap(forms.exterior_derivative(alpha_fn, 2))(x)

  def asd(p):  # ⋆(φ∧α) = −α for α ∈ Λ²₁₄
    ph = eh.phi(c.t)(p)
    g, g_inv, s = g2form.metric_data_from_phi(ph)
    a = alpha_fn(p)
    return jnp.max(jnp.abs(forms.hodge_star(forms.wedge(ph, 3, a, 2), 5, g, g_inv=g_inv,
                                            sqrt_det_g=s) + a)) / jnp.max(jnp.abs(a))
  return {"a": c.t, "dphi_sq_max": float(jnp.max(tor["dphi_sq"])),
          "dpsi_sq_max": float(jnp.max(tor["dpsi_sq"])),
          "d_alpha_max": float(jnp.max(jnp.abs(d_alpha))),
          "alpha_asd_rel_error_max": float(jnp.max(jax.vmap(asd)(x)))}


def torsion_by_region(t: float, points: int, seed: int = 0) -> dict:
  """Normalised-torsion contribution of each singular T³'s tubes (and of the rest of T⁷) for φ_t
  and φ_t^G: Σ_region w |T|² s / Σ_all w s · Vol^(2/7), the strata of `resolution_spectrum`."""
  s = rs.SpectrumSettings(t=t, points_outside=points, points_per_orbit=points, seed=seed)
  rng = np.random.default_rng([seed, 17])
  strata = [("outside",) + rs.sample_outside(s, rng)]
  strata += [(f"T3_{o}",) + rs.sample_orbit_tube(s, o, rng) for o in range(12)]
  out = {}
  for name, f in (("glued", res.glued_phi(0.35, 0.7)), ("green", rg.green_phi(0.35, 0.7))):
    fn = jax.jit(jax.vmap(
        lambda p, f=f: g2form.torsion(lambda y: f(y, jnp.asarray(t, y.dtype)))(p)))
    num, den = {}, 0.0
    for label, x, w in strata:
      tor = fn(jnp.asarray(x))
      sq = np.asarray(tor["sqrt_det_g"])
      num[label] = float(np.sum(w * np.asarray(tor["dpsi_sq"] + tor["dphi_sq"]) * sq))
      den += float(np.sum(w * sq))
    out[name] = {k: v / den * den ** (2.0 / 7.0) for k, v in num.items()}
  return out


def stage_resolution(c) -> dict:
  scaling = res.torsion_scaling(tuple(c.torsion_ts), n_radial=c.n_radial)
  green = rg.compare((c.t,), c.green_points, log=lambda m: None)
  return {"torsion_scaling": scaling, "green": green["rows"][0],
          "torsion_by_region": torsion_by_region(c.t, c.region_points)}


def stage_spectrum(c) -> dict:
  s = rs.SpectrumSettings(
      t=c.t, base=c.spectrum_base, scales=tuple(c.spectrum_scales), powers=tuple(c.spectrum_powers),
      global_frequencies=c.spectrum_global_frequencies, r_min=c.spectrum_r_min,
      points_outside=c.spectrum_points_outside, points_per_orbit=c.spectrum_points_per_orbit,
      chunk=c.spectrum_chunk)
  try:
    s.validate()
  except ValueError as e:
    raise cv.ConfigError(f"config.joyce.spectrum_{e}") from None
  return rs.hodge_spectrum(s, log=lambda m: None)


def plot(report: dict, path: str) -> None:
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, axes = plt.subplots(1, 3, figsize=(15, 4))
  reg = report["resolution"]["torsion_by_region"]
  labels = list(reg["glued"])
  for i, (name, lab) in enumerate((("glued", "φ_t"), ("green", "φ_t^G"))):
    axes[0].bar(np.arange(len(labels)) + 0.4 * i, [max(reg[name][k], 1e-30) for k in labels],
                0.4, label=lab)
  axes[0].set_yscale("log")
  axes[0].set_xticks(np.arange(len(labels)) + 0.2, labels, rotation=60, fontsize=7)
  axes[0].set_title(f"torsion per region, t = {report['t']}")
  axes[0].legend()
  spec = report["spectrum"]
  for ax, k, target in ((axes[1], 2, 12), (axes[2], 3, 43)):
    row = spec["degrees"][k][-1]
    lam = np.maximum(np.asarray(row["lowest_ritz"]), row["floor"])
    ax.semilogy(np.arange(1, len(lam) + 1), lam, "o", ms=3)
    ax.axhline(spec["reference"], color="k", lw=0.8, label="λ_ref (scalar)")
    ax.axhline(spec["reference"] / spec["settings"]["gap_ratio"], color="k", ls="--", lw=0.8,
               label="λ_ref / gap_ratio")
    ax.axvline(target + 0.5, color="r", ls=":", label=f"b{k} = {target} (topology)")
    ax.set_title(f"{k}-forms on M_t: estimate {row['betti']}")
    ax.set_xlabel("index")
    ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Stages 1–4 at config.joyce.t; writes workdir/results/joyce.json and joyce.png."""
  validate(config)
  c = config.joyce
  cpu0, wall0 = time.process_time(), time.time()
  out_dir = os.path.join(workdir, "results")
  os.makedirs(out_dir, exist_ok=True)
  report = {"t": c.t, "load_average_at_start": os.getloadavg(), "cpu_s": {}}
  with jax.enable_x64(True):
    for name, fn in (("orbifold", stage_orbifold), ("local_model", stage_local_model),
                     ("resolution", stage_resolution), ("spectrum", stage_spectrum)):
      t0 = time.process_time()
      report[name] = fn(c)
      report["cpu_s"][name] = time.process_time() - t0
  report["cost"] = {"cpu_s": time.process_time() - cpu0, "wall_s": time.time() - wall0,
                    "load_average_at_end": os.getloadavg()}
  with open(os.path.join(out_dir, "joyce.json"), "w") as f:
    json.dump(report, f, indent=1, default=lambda o: np.asarray(o).tolist())
  if c.plot:
    plot(report, os.path.join(out_dir, "joyce.png"))
  return report
