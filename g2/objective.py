"""Loss terms of the g2 learner: volume-normalised torsion, volume, calibration, harmonic heads.

Scale invariance (the anti-collapse guard). Under phi -> lam phi: g -> lam^(2/3) g,
vol_g -> lam^(7/3) vol_g, |d psi|^2_g -> lam^(-2/3) |d psi|^2_g, so the plain integral
∫ |d psi|^2 vol_g ~ lam^(5/3) is lowered by shrinking phi (the original's collapse). The reported
torsion
    T(phi) = (∫ |T|^2 vol_g / Vol) * Vol^(2/7),   Vol = ∫ vol_g (normalised coordinate measure)
is invariant under phi -> lam phi for every lam > 0: eps*phi never looks better. A degenerate
phi (B(phi) not positive definite) has no metric: NaN under jit (the loop stops), a ValueError
eagerly, and `positivity_margin` < floor flags nearly degenerate ones at evaluation.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from g2 import forms, g2form, harmonic


def normalised_torsion(density: jax.Array, sqrt_det_g: jax.Array) -> jax.Array:
  """(mean_vol density) * Vol^(2/7) over sample points (scale invariant; see module doc)."""
  vol = jnp.mean(sqrt_det_g)
  return jnp.mean(density * sqrt_det_g) / vol * vol ** (2.0 / 7.0)


def _psi_of(phi: jax.Array) -> jax.Array:
  g, g_inv, s = g2form.metric_data_from_phi(phi)
  return forms.hodge_star(phi, 3, g, g_inv=g_inv, sqrt_det_g=s)


def training_geometry(phi_fn, x: jax.Array, plane=None) -> dict:
  """|dphi|^2_g, |dpsi|^2_g, sqrt(det g) and the calibration ratio at one point, sharing one
  evaluation of phi, its Jacobian and g (a leaner training-time version of g2form.torsion, which
  also extracts tau0, tau1 and is used for evaluation)."""
  jac, phi = jax.jacfwd(lambda y: (lambda p: (p, p))(phi_fn(y)), has_aux=True)(x)
  g, g_inv, s = g2form.metric_data_from_phi(phi)
  jac_psi = jax.vmap(lambda t: jax.jvp(_psi_of, (phi,), (t,))[1], in_axes=-1, out_axes=-1)(jac)
  dphi = forms.exterior_derivative_from_jacobian(jac, 3)
  dpsi = forms.exterior_derivative_from_jacobian(jac_psi, 4)
  out = {"dphi_sq": forms.norm_sq(dphi, 4, g, g_inv=g_inv, sqrt_det_g=s),
         "dpsi_sq": forms.norm_sq(dpsi, 5, g, g_inv=g_inv, sqrt_det_g=s), "sqrt_det_g": s}
  if plane is not None:
    idx = np.asarray(plane)
    g_pp = g[idx[:, None], idx[None, :]]
    out["calibration_ratio"] = phi[forms.component_index(plane)] / jnp.sqrt(jnp.linalg.det(g_pp))
  return out


def training_statistics(phi_fn, xs: jax.Array, plane=None, weighting: str = "volume") -> dict:
  """Batch losses: closure/coclosure, volume, calibration (if a plane is given).

  weighting "volume": closure/coclosure are the volume-normalised torsion (scale invariant).
  "uniform": plain means over the sample points, for problems whose ansatz fixes the scale
  (Bryant-Salamon: boundary data imposed exactly), so that the sampling design, not the volume
  form (~ r^6 there), sets the weight of each region. "torsion" is always volume-normalised.
  """
  t = jax.vmap(lambda x: training_geometry(phi_fn, x, plane))(xs)
  s = t["sqrt_det_g"]
  if weighting == "volume":
    closure, coclosure = normalised_torsion(t["dphi_sq"], s), normalised_torsion(t["dpsi_sq"], s)
  elif weighting == "uniform":
    closure, coclosure = jnp.mean(t["dphi_sq"]), jnp.mean(t["dpsi_sq"])
  else:
    raise ValueError(f"weighting={weighting!r} is invalid: allowed 'volume' or 'uniform'")
  out = {"closure": closure, "coclosure": coclosure,
         "torsion": normalised_torsion(t["dphi_sq"] + t["dpsi_sq"], s),
         "volume": jnp.log(jnp.mean(s)) ** 2, "mean_sqrt_det_g": jnp.mean(s)}
  if plane is not None:
    out["calibration"] = jnp.mean((t["calibration_ratio"] - 1.0) ** 2)
    out["calibration_ratio"] = jnp.mean(t["calibration_ratio"])
  return out


def torsion_statistics(phi_fn, xs: jax.Array) -> dict:
  """Per-batch torsion statistics of phi_fn over points xs [B, 7]."""
  t = jax.vmap(g2form.torsion(phi_fn))(xs)
  s = t["sqrt_det_g"]
  return {
      "closure": normalised_torsion(t["dphi_sq"], s),
      "coclosure": normalised_torsion(t["dpsi_sq"], s),
      "torsion": normalised_torsion(t["dphi_sq"] + t["dpsi_sq"], s),
      "tau0_sq": normalised_torsion(t["tau0"] ** 2, s),
      "tau1_sq": normalised_torsion(t["tau1_sq"], s),
      "volume": jnp.log(jnp.mean(s)) ** 2,
      "mean_sqrt_det_g": jnp.mean(s),
  }


def calibration_loss(problem, phi_fn, xs: jax.Array) -> tuple[jax.Array, jax.Array]:
  """mean (phi(P) / vol_g(P) - 1)^2 on the problem's associative coordinate plane P.

  Returns (loss, mean ratio). Differentiable (the original evaluated it under no_grad).
  """
  def ratio(x):
    phi = phi_fn(x)
    g, _ = g2form.metric_from_phi(phi)
    return problem.calibration_ratio(phi, g)

  r = jax.vmap(ratio)(xs)
  return jnp.mean((r - 1.0) ** 2), jnp.mean(r)


def harmonic_losses(h_fn_2, h_fn_3, phi_fn, xs: jax.Array) -> dict:
  """Gram and Hodge-energy losses of the 2- and 3-form heads at points xs (metric g_phi).

  The metric data are computed once for both degrees and held fixed (stop_gradient): the
  harmonic loss trains the heads, never phi.
  """
  geo = jax.lax.stop_gradient(jax.vmap(lambda x: harmonic.point_geometry(phi_fn, (2, 3), x))(xs))
  out = {}
  for name, h_fn, k in (("h2", h_fn_2, 2), ("h3", h_fn_3, 3)):
    if h_fn is None:
      out[f"gram_{name}"] = jnp.zeros(())
      out[f"energy_{name}"] = jnp.zeros(())
      continue
    m, d = harmonic.batch_matrices_from_geometry(h_fn, k, geo, xs)
    out[f"gram_{name}"], out[f"energy_{name}"] = harmonic.head_losses(m, d)
  out["harm_pen"] = out["energy_h2"] + out["energy_h3"]
  return out


def positivity(phi_fn, xs: jax.Array) -> dict:
  """Scale-invariant positivity margin of phi (1 for phi0) and |phi|^2_g (7 for any positive phi)."""

  def point(x):
    phi = phi_fn(x)
    g, g_inv, s = g2form.metric_data_from_phi(phi)
    eig = jnp.linalg.eigvalsh(g)
    return (g2form.positivity_margin(phi), eig[0] / s ** (2.0 / 7.0),
            forms.norm_sq(phi, 3, g, g_inv=g_inv, sqrt_det_g=s))

  margin, min_eig, phi_norm_sq = jax.vmap(point)(xs)
  return {"positivity_margin_min": jnp.min(margin), "min_eig_g_normalised": jnp.min(min_eig),
          "phi_norm_sq_max_err": jnp.max(jnp.abs(phi_norm_sq - 7.0))}
