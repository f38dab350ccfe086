"""Harmonic forms of g_phi: Hodge energies, L2(g) Gram matrices, Rayleigh-Ritz Betti estimates.

For k-forms h_a (heads of one network, or a fixed trial basis) and the metric g = g_phi(x):
  Gram       M_ab = <h_a, h_b>_{L2(g)}                       = ∫ <h_a, h_b>_g vol_g
  Dirichlet  D_ab = <dh_a, dh_b>_{L2(g)} + <d⋆h_a, d⋆h_b>_{L2(g)} = <Δ h_a, h_b>_{L2(g)}
(|d⋆h| = |δh| since ⋆ is an isometry). Integrals use the normalised coordinate measure
d^7x / (2pi)^7 on T^7 divided by the mean volume density, i.e. averages w.r.t. vol_g / Vol.
The eigenvalues of D v = λ M v (Rayleigh-Ritz) approximate the Hodge Laplacian's spectrum from
above on the trial space. The Betti estimate (`gap_count`) is scale-aware: eigenvalues below a
round-off floor (machine epsilon of the evaluation x the quadrature's chunk sums x λ_max) are
exact zero modes; the spectrum's scale is λ_ref, the first non-zero Ritz value of the *scalar*
Laplacian on the same quadrature (b0 = 1 is certain, so that value is unambiguous). The count
is the number of Ritz values below λ_ref / gap_ratio, accepted only when a log-gap of at least
`gap_ratio` (above the floor) sits right above them. A widest-gap rule with a fixed floor (the previous estimator)
counted b2 = 6 on a conformally flat T^7: six exactly harmonic constant forms, clipped to the
floor, opened a wider fake gap below 15 approximately harmonic ones. "No gap" is reported as
such, never replaced by a fixed cut. Trial spaces: scalar functions {1, cos k.x, sin k.x} times
all constant k-forms, the frequencies k either along the axes or ranked by the metric's own
Fourier power (`metric_frequencies`: first-order corrections of the harmonic forms live at the
metric's frequencies), grown in a ladder whose Ritz values are reported (convergence). On flat
T^7 the spectrum is {|k|^2}: b2 = 21, b3 = 35 zero modes, then a gap to 1. The original's "rank
of a Euclidean Gram matrix of network outputs" says nothing about cohomology.
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
    needed = (k, k + 1, 8 - k) if k > 0 else (0, 1)  # d⋆ of a function is 0
    geo[f"k{k}"] = {"star": st, "jac_star": jst,
                    "compound": tuple(_compound(g, g_inv, s, j) for j in needed)}
  return geo


def form_features(h_fn: Callable, k: int, geo: dict, x: jax.Array):
  """Per-point pairs (A, B) with s G = A B^T and s D = A' B'^T at this point.

  Returns ((h s, h C_k), (d-features s, d-features C)): plain dot products of the pairs are the
  metric inner products, so sums over points become one large matmul (no factorisation).
  """
  jac_h, h = jax.jacfwd(lambda y: (lambda v: (v, v))(h_fn(y)), has_aux=True)(x)  # [n, nk, 7]
  gk = geo[f"k{k}"]
  dh = forms.exterior_derivative_from_jacobian(jac_h, k)
  s = geo["s"]
  if k == 0:  # functions: the Dirichlet form is |dh|^2 (⋆h is a 7-form, d⋆h = 0)
    c_k, c_d = gk["compound"]
    return (s * h, h @ c_k), (s * dh, dh @ c_d)
  jac_sh = (jnp.einsum("nci,cd->ndi", jac_h, gk["star"])
            + jnp.einsum("nc,cdi->ndi", h, gk["jac_star"]))
  dsh = forms.exterior_derivative_from_jacobian(jac_sh, 7 - k)
  c_k, c_d, c_ds = gk["compound"]
  feat_h = (s * h, h @ c_k)
  feat_d = (s * jnp.concatenate([dh, dsh], -1), jnp.concatenate([dh @ c_d, dsh @ c_ds], -1))
  return feat_h, feat_d


def point_matrices(h_fn: Callable, k: int, phi_fn: Callable, x: jax.Array):
  """Gram and Dirichlet features at one point (see form_features), and s = sqrt(det g).

  Args:
    h_fn: x [7] -> [n, C(7,k)] (n forms).
    k: degree (0..6).
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


def roundoff_floor(eigenvalues: np.ndarray, eps: float, chunk: int) -> float:
  """Round-off level of the Ritz values: eps x sqrt(points per chunk sum) x 10 x λ_max.

  The matrices are sums of per-point products evaluated in the points' precision (eps) over
  chunks of `chunk` points (float64 across chunks); an exact zero mode comes out at about
  eps sqrt(chunk) |D| (checked on flat T^7: float32 zero modes at <= 3e-6 λ_max).
  """
  lam_max = float(np.max(np.abs(eigenvalues))) if np.size(eigenvalues) else 0.0
  return max(10.0 * eps * np.sqrt(max(chunk, 1)) * lam_max, 1e-300)


def gap_count(eigenvalues: np.ndarray, gap_ratio: float, floor: float,
              reference: float | None = None) -> dict:
  """Number of near-zero Ritz values by a scale-aware spectral gap.

  Eigenvalues below `floor` (round-off) are exact zeros and are lifted to it; a gap at i means
  lam[i+1] >= gap_ratio * max(lam[i], floor).
  * With a `reference` scale (the first non-zero eigenvalue of the scalar Laplacian): the count
    is c = #{lam <= reference / gap_ratio}, accepted only if a gap sits right there (at c; the
    reference itself closes a space that is entirely near-harmonic). Exact zero modes below
    approximately harmonic ones cannot split the cluster, and a cluster that straddles the
    scale gives "no gap" instead of a wrong count. A count of 0 needs lam[0] >= reference.
  * Without one: the highest gap.
  Returns count = None ("no gap") when no gap qualifies.
  """
  lam = np.sort(np.asarray(eigenvalues, np.float64))
  out = {"count": None, "gap_ratio": None, "gap_after": None, "gap_before": None,
         "floor": float(floor), "reference": None if reference is None else float(reference),
         "criterion": (f"highest gap lam[i+1] >= {gap_ratio:g} max(lam[i], floor)"
                       if reference is None else
                       f"Ritz values <= reference / {gap_ratio:g}, with a gap lam[c+1] >= "
                       f"{gap_ratio:g} max(lam[c], floor) right above them")}
  merged = lam if reference is None else np.sort(np.r_[lam, reference])
  if merged.size < 2:
    return out
  lifted = np.maximum(merged, floor)
  ratios = lifted[1:] / lifted[:-1]
  ok = ratios >= gap_ratio
  if reference is not None:
    c = int(np.sum(merged <= reference / gap_ratio))
    if c == 0:  # nothing near-harmonic (e.g. 2-forms on T^7/Γ): accepted as 0 only when the
      # whole trial space is at least as stiff as the scalar scale (lam[0] >= reference); values
      # between reference / gap_ratio and reference stay ambiguous ("no gap").
      if lam.size and lam[0] >= (1.0 - 1e-6) * reference and lam[0] >= gap_ratio * floor:
        out.update(count=0, gap_ratio=float(lam[0] / floor), gap_after=float(floor),
                   gap_before=float(lam[0]))
      else:
        out["largest_ratio_no_gap"] = float(max(lam[0], floor) / floor) if lam.size else None
      return out
    ok &= np.arange(ok.size) == c - 1
  if not np.any(ok):
    out["largest_ratio_no_gap"] = float(np.max(ratios))
    return out
  i = int(np.nonzero(ok)[0][-1])
  out.update(count=int(np.sum(lam <= merged[i])), gap_ratio=float(ratios[i]),
             gap_after=float(merged[i]), gap_before=float(merged[i + 1]))
  return out


# ------------------------------------------------------------------------------------------
# Trial spaces: scalar functions {1, cos k.x, sin k.x} x all constant k-forms.


def axis_frequencies(max_frequency: int, directions: int = 7) -> np.ndarray:
  """Frequencies j e_m, 1 <= j <= max_frequency, m < directions: [M, 7] ints."""
  if max_frequency < 0:
    raise ConfigError(f"config.harmonic.trial_max_frequency={max_frequency!r} is invalid: "
                      "allowed an integer >= 0")
  if not 1 <= directions <= 7:
    raise ConfigError(f"config.harmonic.trial_directions={directions!r} is invalid: allowed 1..7")
  eye = np.eye(7, dtype=np.int64)
  return np.asarray([j * eye[m] for j in range(1, max_frequency + 1) for m in range(directions)],
                    np.int64).reshape(-1, 7)


def metric_frequencies(phi_fn: Callable, grid_n: int, chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
  """Non-zero frequencies ranked by the Fourier power of the metric g_phi on the n^7 grid.

  Returns (freqs [M, 7] ints (one of each +-k pair, |k_i| <= (n - 1) // 2 so that products of
  trial functions stay below the grid's Nyquist limit), power [M] descending). A harmonic form
  of g deviates from a constant form first at the frequencies of g, so ranking trial
  frequencies by this power is a trial space adapted to the metric.
  """
  xs = grid_points(grid_n)
  iu = np.triu_indices(7)
  metric = jax.jit(jax.vmap(lambda x: g2form.metric_from_phi(phi_fn(x))[0][iu]))
  vals = np.concatenate([np.asarray(metric(jnp.asarray(xs[i:i + chunk])), np.float64)
                         for i in range(0, xs.shape[0], chunk)])
  spec = np.fft.fftn(vals.reshape((grid_n,) * 7 + (-1,)), axes=range(7)) / grid_n ** 7
  power = np.sum(np.abs(spec) ** 2, axis=-1)
  kmax = (grid_n - 1) // 2
  ks = np.stack(np.meshgrid(*[np.fft.fftfreq(grid_n, 1.0 / grid_n).astype(np.int64)] * 7,
                            indexing="ij"), -1).reshape(-1, 7)
  power = power.reshape(-1)
  nz = np.any(ks != 0, axis=1)
  first = np.asarray([next((v for v in k if v != 0), 0) for k in ks])
  keep = nz & (first > 0) & (np.max(np.abs(ks), axis=1) <= kmax)
  ks, power = ks[keep], 2.0 * power[keep]  # + the -k partner
  order = np.lexsort((np.abs(ks).sum(1), -np.round(power, 14)))
  return ks[order], power[order]


def trig_trial_fn(k: int, freqs: np.ndarray) -> tuple[Callable, int]:
  """Trial k-forms f(x) dx^I, f in {1} ∪ {cos k_m.x, sin k_m.x} (freqs [M, 7] integers).

  Returns (h_fn: x [7] -> [n, C(7,k)], n = (1 + 2M) C(7,k)). On flat T^7 the Laplace spectrum
  of this space is {0 (x C(7,k)), |k_m|^2 (x 2 C(7,k) each)}.
  """
  nk = forms.num_components(k)
  freqs = np.asarray(freqs, np.float64).reshape(-1, 7)
  n_s = 1 + 2 * freqs.shape[0]

  def h_fn(x):
    arg = x @ jnp.asarray(freqs.T, x.dtype)
    # [1, cos k1.x, sin k1.x, cos k2.x, ...]: the space of the first m frequencies is the first
    # (1 + 2m) C(7,k) rows (nested trial spaces share one assembly, see trial_space_ladders).
    s = jnp.concatenate([jnp.ones((1,), x.dtype), jnp.stack([jnp.cos(arg), jnp.sin(arg)],
                                                            -1).reshape(-1)])
    return (s[:, None, None] * jnp.eye(nk, dtype=x.dtype)[None]).reshape(n_s * nk, nk)

  return h_fn, n_s * nk


def fourier_trial_fn(k: int, max_frequency: int, directions: int = 7) -> tuple[Callable, int]:
  """Axis-aligned trial space: f in {1, cos(j x_m), sin(j x_m): m < directions, j <= max_frequency}."""
  return trig_trial_fn(k, axis_frequencies(max_frequency, directions))


def grid_points(n: int) -> np.ndarray:
  """The n^7 periodic tensor grid 2 pi j / n on T^7 (float32)."""
  axes = [np.arange(n, dtype=np.float64) * 2 * np.pi / n] * 7
  return np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 7).astype(np.float32)


def betti_estimate(h_fn: Callable, k: int, phi_fn: Callable, xs: np.ndarray, *, chunk: int,
                   gap_ratio: float, reference: float | None = None) -> dict:
  """Rayleigh-Ritz on span(h_fn) with g_phi: spectrum, round-off floor, gap and Betti estimate."""
  m, d = accumulate_matrices(h_fn, k, phi_fn, xs, chunk)
  lam, vecs, rank = rayleigh_ritz(m, d)
  floor = roundoff_floor(lam, float(np.finfo(np.asarray(xs).dtype).eps), min(chunk, len(xs)))
  gap = gap_count(lam, gap_ratio, floor, reference)
  return {"degree": k, "trial_dim": int(m.shape[0]), "rank": rank, "eigenvalues": lam,
          "vectors": vecs, "betti": gap["count"], "gap_ratio": gap["gap_ratio"],
          "gap_after": gap["gap_after"], "gap_before": gap["gap_before"], "floor": floor,
          "reference": reference, "criterion": gap["criterion"],
          "largest_ratio_no_gap": gap.get("largest_ratio_no_gap")}


def accumulate_trial_matrices(phi_fn: Callable, freqs, degrees, xs: np.ndarray,
                              chunk: int, symmetrise: Callable | None = None) -> dict:
  """{k: (M, D)} of the trig trial space of each degree (freqs [M, 7], or a dict per degree),
  one pass (one metric evaluation) per chunk. `symmetrise(k, h_fn) -> h_fn` maps each trial
  form to, e.g., its average over a group (trial spaces on a quotient, `joyce.average_forms`)."""
  degrees = tuple(degrees)
  by_degree = freqs if isinstance(freqs, dict) else {k: freqs for k in degrees}
  fns = {k: trig_trial_fn(k, by_degree[k])[0] for k in degrees}
  if symmetrise is not None:
    fns = {k: symmetrise(k, fn) for k, fn in fns.items()}
  return accumulate_form_matrices(phi_fn, fns, xs, chunk)


def accumulate_form_matrices(phi_fn: Callable, fns: dict, xs: np.ndarray, chunk: int) -> dict:
  """{k: (M, D)} of the trial form fields fns {k: x [7] -> [n_k, C(7,k)]}, one pass (one metric
  evaluation) per chunk of points xs [P, 7]."""
  degrees = tuple(fns)

  @jax.jit
  def sums(x):
    geo = jax.vmap(lambda p: point_geometry(phi_fn, degrees, p))(x)
    return {k: _sum_over_points(*jax.vmap(lambda g, p, k=k: form_features(fns[k], k, g, p))(geo, x),
                                geo["s"]) for k in degrees}

  tot = {k: [0.0, 0.0, 0.0] for k in degrees}
  for i in range(0, xs.shape[0], chunk):
    out = sums(jnp.asarray(xs[i:i + chunk]))
    for k in degrees:
      for j in range(3):
        tot[k][j] = tot[k][j] + np.asarray(out[k][j], np.float64)
  return {k: (t[0] / t[2], t[1] / t[2]) for k, t in tot.items()}


def trial_space_ladders(phi_fn: Callable, xs: np.ndarray, freqs: np.ndarray, sizes, degrees, *,
                        chunk: int, gap_ratio: float, symmetrise: Callable | None = None) -> dict:
  """Betti estimates on nested trig trial spaces (first m frequencies, m in `sizes`).

  One assembly of the largest space (degrees 0 and `degrees`); each smaller space is a leading
  block. λ_ref = first non-zero scalar Ritz value of the largest space. Returns {"reference",
  "scalar_eigenvalues", k: [one betti_estimate-like dict per size]}: the harmonic Ritz values
  must fall as the space grows while the first non-harmonic one stays (convergence report).
  `symmetrise` (see accumulate_trial_matrices) acts row by row, so the nested blocks stay nested;
  directions it makes dependent (e.g. anti-invariant forms averaged to 0) are dropped by
  rayleigh_ritz.
  """
  sizes = sorted({int(min(s, len(freqs))) for s in sizes})
  degrees = tuple(degrees)
  # The scalar space adds the unit axis frequencies (|k|^2 = 1, the lowest non-zero modes of a
  # near-flat torus): the reference must approximate the first non-zero eigenvalue, not an
  # eigenvalue of the metric's frequencies. Functions have one component: this costs little.
  scalar_freqs = np.concatenate([axis_frequencies(1, 7), freqs[:sizes[-1]]])
  scalar_freqs = np.unique(scalar_freqs, axis=0)
  mats = accumulate_trial_matrices(phi_fn, {0: scalar_freqs, **{k: freqs[:sizes[-1]]
                                                               for k in degrees}},
                                   (0,) + degrees, xs, chunk, symmetrise)
  lam0, _, _ = rayleigh_ritz(*mats[0])
  reference = float(lam0[1]) if lam0.size > 1 else None
  eps = float(np.finfo(np.asarray(xs).dtype).eps)
  out = {"reference": reference, "scalar_eigenvalues": lam0, "sizes": sizes}
  for k in degrees:
    nk = forms.num_components(k)
    m_all, d_all = mats[k]
    ladder = []
    for size in sizes:
      n = (1 + 2 * size) * nk
      lam, vecs, rank = rayleigh_ritz(m_all[:n, :n], d_all[:n, :n])
      floor = roundoff_floor(lam, eps, min(chunk, len(xs)))
      gap = gap_count(lam, gap_ratio, floor, reference)
      ladder.append({"degree": k, "n_frequencies": size, "trial_dim": n, "rank": rank,
                     "eigenvalues": lam, "vectors": vecs, "betti": gap["count"],
                     "gap_ratio": gap["gap_ratio"], "gap_after": gap["gap_after"],
                     "gap_before": gap["gap_before"], "floor": floor, "reference": reference,
                     "criterion": gap["criterion"],
                     "largest_ratio_no_gap": gap.get("largest_ratio_no_gap")})
    out[k] = ladder
  return out
