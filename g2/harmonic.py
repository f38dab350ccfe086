"""Harmonic forms of g_phi: Hodge energies, L2(g) Gram matrices, Rayleigh-Ritz Betti estimates.

For k-forms h_a (heads of one network, or a fixed trial basis) and the metric g = g_phi(x):
  Gram       M_ab = <h_a, h_b>_{L2(g)}                       = ∫ <h_a, h_b>_g vol_g
  Dirichlet  D_ab = <dh_a, dh_b>_{L2(g)} + <d⋆h_a, d⋆h_b>_{L2(g)} = <Δ h_a, h_b>_{L2(g)}
(|d⋆h| = |δh| since ⋆ is an isometry). Integrals use the normalised coordinate measure
d^7x / (2pi)^7 on T^7 divided by the mean volume density, i.e. averages w.r.t. vol_g / Vol.
The eigenvalues of D v = λ M v (Rayleigh-Ritz) approximate the Hodge Laplacian's spectrum from
above on the trial space; the Betti number is the number of eigenvalues below the largest
spectral gap, reported with the spectrum. On flat T^7 the spectrum is {|k|^2}: b2 = 21, b3 = 35
zero modes, then a gap to 1. The original's "rank of a Euclidean Gram matrix of network outputs"
says nothing about cohomology (any x-dependent outputs are "full rank").
"""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from common.config_validation import ConfigError
from g2 import forms, g2form


def _compound(g: jax.Array, g_inv: jax.Array, s: jax.Array, k: int) -> jax.Array:
  """C_k(g^-1) [C(7,k), C(7,k)]: <a, b>_g = a . C . b."""
  eye = jnp.eye(forms.num_components(k), dtype=g.dtype)
  return forms.raise_indices(eye, k, g, g_inv=g_inv, sqrt_det_g=s)


def point_geometry(phi_fn: Callable, degrees, x: jax.Array) -> dict:
  """Metric data at one point for forms of the given degrees: the star of the basis forms and
  its x-Jacobian, the compound inverse metrics C_j(g^-1), and s = sqrt(det g).

  ⋆_g is linear, so ⋆h = H(x) S(x) with S the star of the C(7,k) basis forms: only the basis
  is pushed through the metric (and its x-derivative), never the n forms themselves.
  """
  degrees = tuple(degrees)

  def stars(y):
    g, g_inv, s = g2form.metric_data_from_phi(phi_fn(y))
    out = tuple(forms.hodge_star(jnp.eye(forms.num_components(k), dtype=g.dtype), k, g,
                                 g_inv=g_inv, sqrt_det_g=s) for k in degrees)
    return out, (out, g, g_inv, s)

  jac_stars, (star_vals, g, g_inv, s) = jax.jacfwd(stars, has_aux=True)(x)
  geo = {"s": s}
  for k, st, jst in zip(degrees, star_vals, jac_stars):
    geo[f"k{k}"] = {"star": st, "jac_star": jst,
                    "compound": tuple(_compound(g, g_inv, s, j) for j in (k, k + 1, 8 - k))}
  return geo


def form_features(h_fn: Callable, k: int, geo: dict, x: jax.Array):
  """Per-point pairs (A, B) with s G = A B^T and s D = A' B'^T at this point.

  Returns ((h s, h C_k), (d-features s, d-features C)): plain dot products of the pairs are the
  metric inner products, so sums over points become one large matmul (no factorisation).
  """
  jac_h, h = jax.jacfwd(lambda y: (lambda v: (v, v))(h_fn(y)), has_aux=True)(x)  # [n, nk, 7]
  gk = geo[f"k{k}"]
  jac_sh = (jnp.einsum("nci,cd->ndi", jac_h, gk["star"])
            + jnp.einsum("nc,cdi->ndi", h, gk["jac_star"]))
  dh = forms.exterior_derivative_from_jacobian(jac_h, k)
  dsh = forms.exterior_derivative_from_jacobian(jac_sh, 7 - k)
  s = geo["s"]
  c_k, c_d, c_ds = gk["compound"]
  feat_h = (s * h, h @ c_k)
  feat_d = (s * jnp.concatenate([dh, dsh], -1), jnp.concatenate([dh @ c_d, dsh @ c_ds], -1))
  return feat_h, feat_d


def point_matrices(h_fn: Callable, k: int, phi_fn: Callable, x: jax.Array):
  """Gram and Dirichlet features at one point (see form_features), and s = sqrt(det g).

  Args:
    h_fn: x [7] -> [n, C(7,k)] (n forms).
    k: degree (1..6).
    phi_fn: x [7] -> phi [35] (its metric is used, and differentiated for d⋆).
  """
  geo = point_geometry(phi_fn, (k,), x)
  return (*form_features(h_fn, k, geo, x), geo["s"])


def _sum_over_points(feat_h, feat_d, s):
  """(sum_p s G_p, sum_p s D_p, sum_p s) from per-point feature pairs [P, n, c]."""
  gram = jnp.einsum("pnc,pmc->nm", *feat_h)
  dirichlet = jnp.einsum("pnc,pmc->nm", *feat_d)
  gram, dirichlet = 0.5 * (gram + gram.T), 0.5 * (dirichlet + dirichlet.T)
  return gram, dirichlet, jnp.sum(s)


def batch_matrices(h_fn: Callable, k: int, phi_fn: Callable, xs: jax.Array):
  """Volume-weighted averages (M, D) over points xs [B, 7] (normalised by the mean density)."""
  gram, dirichlet, s = _sum_over_points(
      *jax.vmap(lambda x: point_matrices(h_fn, k, phi_fn, x))(xs))
  return gram / s, dirichlet / s


def accumulate_matrices(h_fn: Callable, k: int, phi_fn: Callable, xs: np.ndarray,
                        chunk: int) -> tuple[np.ndarray, np.ndarray]:
  """Same as batch_matrices over many points, in jitted chunks (evaluation)."""
  @jax.jit
  def sums(x):
    return _sum_over_points(*jax.vmap(lambda p: point_matrices(h_fn, k, phi_fn, p))(x))

  tot_g = tot_d = tot_s = 0.0
  for i in range(0, xs.shape[0], chunk):
    a, b, c = sums(jnp.asarray(xs[i:i + chunk]))
    tot_g = tot_g + np.asarray(a, np.float64)
    tot_d = tot_d + np.asarray(b, np.float64)
    tot_s = tot_s + float(c)
  return tot_g / tot_s, tot_d / tot_s


def batch_matrices_from_geometry(h_fn: Callable, k: int, geo: dict, xs: jax.Array):
  """(M, D) over points xs [B, 7] with precomputed (batched) point_geometry."""
  feat_h, feat_d = jax.vmap(lambda g, x: form_features(h_fn, k, g, x))(geo, xs)
  gram, dirichlet, s = _sum_over_points(feat_h, feat_d, geo["s"])
  return gram / s, dirichlet / s


def head_losses(m: jax.Array, d: jax.Array) -> tuple[jax.Array, jax.Array]:
  """(gram loss |M - I|_F^2 / n, mean Dirichlet energy tr(D) / n) of n heads."""
  n = m.shape[0]
  return jnp.sum((m - jnp.eye(n, dtype=m.dtype)) ** 2) / n, jnp.trace(d) / n


def rayleigh_ritz(gram: np.ndarray, dirichlet: np.ndarray, rel_tol: float = 1e-7):
  """Generalised eigenproblem D v = λ M v on the numerically non-degenerate part of span(M).

  Returns (eigenvalues ascending, coefficient vectors [n, r] (M-orthonormal columns), r =
  dimension kept, n - r = directions dropped as linearly dependent).
  """
  gram = 0.5 * (np.asarray(gram, np.float64) + np.asarray(gram, np.float64).T)
  dirichlet = 0.5 * (np.asarray(dirichlet, np.float64) + np.asarray(dirichlet, np.float64).T)
  w, u = np.linalg.eigh(gram)
  keep = w > rel_tol * max(w.max(), 1e-300)
  t = u[:, keep] / np.sqrt(w[keep])
  lam, v = np.linalg.eigh(t.T @ dirichlet @ t)
  return lam, t @ v, int(keep.sum())


def spectral_gap_count(eigenvalues: np.ndarray, gap_ratio: float, floor_rel: float = 1e-3) -> dict:
  """Number of eigenvalues below the largest relative gap (None when no gap >= gap_ratio).

  Eigenvalues below floor_rel * max are clipped to that floor first, so the scatter of the
  (near-)zero modes (quadrature and trial-space error) does not count as a gap; the count is the
  number of modes separated from the rest by the widest remaining gap.
  """
  lam = np.sort(np.asarray(eigenvalues, np.float64))
  if lam.size < 2:
    return {"count": None, "gap_ratio": None, "gap_after": None, "gap_before": None}
  floor = max(floor_rel * float(np.abs(lam).max()), 1e-300)
  clipped = np.maximum(lam, floor)
  ratios = clipped[1:] / clipped[:-1]
  i = int(np.argmax(ratios))
  ok = ratios[i] >= gap_ratio
  return {"count": i + 1 if ok else None, "gap_ratio": float(ratios[i]),
          "gap_after": float(lam[i]), "gap_before": float(lam[i + 1])}


def fourier_trial_fn(k: int, max_frequency: int, directions: int = 7) -> tuple[Callable, int]:
  """Trial k-forms f(x) dx^I, f in {1, cos(j x_m), sin(j x_m): m < directions, 1 <= j <= max_frequency}.

  Returns (h_fn: x [7] -> [n, C(7,k)], n). On flat T^7 its Laplace spectrum is {0 (x C(7,k)),
  j^2}; fewer directions give a smaller (cheaper) trial space with the same zero modes.
  """
  if max_frequency < 0:
    raise ConfigError(f"config.harmonic.trial_max_frequency={max_frequency!r} is invalid: "
                      "allowed an integer >= 0")
  if not 1 <= directions <= 7:
    raise ConfigError(f"config.harmonic.trial_directions={directions!r} is invalid: allowed 1..7")
  nk = forms.num_components(k)
  js = np.arange(1, max_frequency + 1, dtype=np.float32)

  def scalars(x):
    arg = (js[:, None] * x[None, :directions]).reshape(-1)
    return jnp.concatenate([jnp.ones((1,), x.dtype), jnp.cos(arg), jnp.sin(arg)])

  n_s = 1 + 2 * directions * max_frequency

  def h_fn(x):
    s = scalars(x)
    return (s[:, None, None] * jnp.eye(nk, dtype=x.dtype)[None]).reshape(n_s * nk, nk)

  return h_fn, n_s * nk


def betti_estimate(h_fn: Callable, k: int, phi_fn: Callable, xs: np.ndarray, *, chunk: int,
                   gap_ratio: float) -> dict:
  """Rayleigh-Ritz on span(h_fn) with g_phi: spectrum, gap and the Betti estimate."""
  m, d = accumulate_matrices(h_fn, k, phi_fn, xs, chunk)
  lam, vecs, rank = rayleigh_ritz(m, d)
  gap = spectral_gap_count(lam, gap_ratio)
  return {"degree": k, "trial_dim": int(m.shape[0]), "rank": rank, "eigenvalues": lam,
          "vectors": vecs, "betti": gap["count"], "gap_ratio": gap["gap_ratio"],
          "gap_after": gap["gap_after"], "gap_before": gap["gap_before"]}
