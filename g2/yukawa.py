"""Yukawa couplings Y_ijk = ∫ omega_i ∧ omega_j ∧ Phi_k on T^7 (2 + 2 + 3 forms), two integrators.

The integrand is the dx^1..7 coefficient of the wedge product of coordinate components
(already a density: no extra sqrt(det g), which would double-count it), integrated against the
normalised coordinate measure d^7x / (2 pi)^7 (multiply by (2 pi)^7 for the raw integral):
  * Monte Carlo: uniform points, mean and standard error per entry;
  * tensor grids: the periodic trapezoid rule on n^7 nodes for each n in `grid_ns`, exact for
    trigonometric polynomials of degree < n per coordinate; the report shows the grids
    converging and the Monte Carlo estimate agreeing with the finest one.
Y is computed only on harmonic forms: when the Rayleigh-Ritz analysis finds no harmonic head of a
degree, the report is null with the reason (never a tensor of non-harmonic forms).
Checks that can fail: (1) for closed forms Y depends only on their cohomology classes (Stokes),
and on T^7 the class of a closed form is its mean, so Y must equal the cup product of the
forms' means (`cup_product_check`): a density error (an extra sqrt(det g)) or forms that are not
closed break it; (2) mode-n singular values are recomputed after a random orthogonal change of
the harmonic basis, applied to the form functions before integration (`basis_invariance`).
Only basis-invariant summaries are reported: mode-n singular values of Y and their ratios, and
a Tucker decomposition (tensorly, JAX backend) with its reconstruction error. "Mass ratios"
derived from singular-value ratios are compared with the GIFT numbers as non-geometric targets:
no map from these forms to fermion generations is defined anywhere.
"""
from __future__ import annotations

import functools
import os
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from g2 import form_ops, harmonic

# GIFT's numbers (reference §1.5): non-geometric targets, shown for comparison only.
GIFT_TARGETS = {
    "gift_v1.0_notebook": {"m_t/m_c": 57.5, "m_c/m_u": 20.0, "m_tau/m_mu": 16.8},
    "gift_observables_csv": {"m_t/m_c": 135.49, "m_c/m_s": 82.0 / 7.0, "m_s/m_d": 20.0},
}


@functools.lru_cache(maxsize=None)
def _tables() -> tuple[np.ndarray, np.ndarray]:
  """(W22 [21, 21, 35]: 2∧2 -> 4,  W43 [35, 35]: (4∧3) coefficient of dx^1..7)."""
  return form_ops.wedge_dense(2, 2), form_ops.wedge_dense(4, 3)[..., 0]


def triple_coefficients() -> np.ndarray:
  """T[a, b, c]: dx^{I_a} ∧ dx^{J_b} ∧ dx^{K_c} = T_abc dx^1..7 (2, 2, 3 forms)."""
  w22, w43 = _tables()
  return np.einsum("abd,dc->abc", w22, w43)


def point_integrand(omega: jax.Array, big_phi: jax.Array) -> jax.Array:
  """omega [P, n2, 21], Phi [P, n3, 35] -> [P, n2, n2, n3] top-form coefficients."""
  w22, w43 = (jnp.asarray(t, omega.dtype) for t in _tables())
  v = jnp.einsum("pjb,abd->pjad", omega, w22)
  four = jnp.einsum("pia,pjad->pijd", omega, v)  # omega_i ∧ omega_j
  dual = jnp.einsum("pkc,dc->pkd", big_phi, w43)
  return jnp.einsum("pijd,pkd->pijk", four, dual)


def integrate(omega_fn: Callable, phi_fn_forms: Callable, xs: np.ndarray, chunk: int):
  """(mean, standard error of the mean) of the integrand over points xs [N, 7]."""
  @jax.jit
  def sums(x):
    f = point_integrand(jax.vmap(omega_fn)(x), jax.vmap(phi_fn_forms)(x))
    return jnp.sum(f, 0), jnp.sum(f ** 2, 0)

  s1 = s2 = 0.0
  for i in range(0, xs.shape[0], chunk):
    a, b = sums(jnp.asarray(xs[i:i + chunk]))
    s1, s2 = s1 + np.asarray(a, np.float64), s2 + np.asarray(b, np.float64)
  n = xs.shape[0]
  mean = s1 / n
  var = np.maximum(s2 / n - mean ** 2, 0.0)
  return mean, np.sqrt(var / max(n - 1, 1))


def mc_points(n: int, seed: int) -> np.ndarray:
  return np.random.default_rng(seed).uniform(0, 2 * np.pi, (n, 7)).astype(np.float32)


def grid_points(n: int) -> np.ndarray:
  """The n^7 periodic tensor grid on T^7 (float32)."""
  return harmonic.grid_points(n)


def mode_singular_values(y: np.ndarray) -> list[np.ndarray]:
  """Singular values of the three mode-n unfoldings (invariant under orthogonal basis changes)."""
  return [np.linalg.svd(np.moveaxis(y, m, 0).reshape(y.shape[m], -1), compute_uv=False)
          for m in range(3)]


def tucker_summary(y: np.ndarray, rank) -> dict:
  """Tucker decomposition with tensorly's JAX backend; relative reconstruction error."""
  import tensorly as tl
  from tensorly.decomposition import tucker
  rank = [min(int(r), s) for r, s in zip(rank, y.shape)]
  with tl.backend_context("jax"):
    t = tl.tensor(jnp.asarray(y, jnp.float32))
    core, factors = tucker(t, rank=rank, init="svd", random_state=0)
    recon = tl.tucker_to_tensor((core, factors))
    err = float(tl.norm(recon - t) / tl.norm(t))
    core_sv = [np.linalg.svd(np.moveaxis(np.asarray(core), m, 0).reshape(rank[m], -1),
                             compute_uv=False).tolist() for m in range(3)]
  return {"rank": rank, "relative_reconstruction_error": err, "core_mode_singular_values": core_sv}


def _ratios(sv: np.ndarray) -> dict:
  s = np.asarray(sv, np.float64)
  out = {}
  if s.size >= 2 and s[1] > 0:
    out["s1/s2"] = float(s[0] / s[1])
  if s.size >= 3 and s[2] > 0:
    out["s2/s3"] = float(s[1] / s[2])
  return out


def integrate_with_means(omega_fn: Callable, phi_fn_forms: Callable, xs: np.ndarray, chunk: int):
  """(Y mean, standard error, mean of omega [n2, 21], mean of Phi [n3, 35]) over points xs."""
  @jax.jit
  def sums(x):
    om, ph = jax.vmap(omega_fn)(x), jax.vmap(phi_fn_forms)(x)
    f = point_integrand(om, ph)
    return jnp.sum(f, 0), jnp.sum(f ** 2, 0), jnp.sum(om, 0), jnp.sum(ph, 0)

  acc = [0.0, 0.0, 0.0, 0.0]
  for i in range(0, xs.shape[0], chunk):
    out = sums(jnp.asarray(xs[i:i + chunk]))
    acc = [a + np.asarray(o, np.float64) for a, o in zip(acc, out)]
  n = xs.shape[0]
  mean = acc[0] / n
  var = np.maximum(acc[1] / n - mean ** 2, 0.0)
  return mean, np.sqrt(var / max(n - 1, 1)), acc[2] / n, acc[3] / n


def cup_product(omega_mean: np.ndarray, phi_mean: np.ndarray) -> np.ndarray:
  """Y of the constant forms with these components: the cup product of their T^7 classes."""
  return np.einsum("abc,ia,jb,kc->ijk", triple_coefficients(), omega_mean, omega_mean, phi_mean)


def _harmonic_bases(heads: dict) -> tuple[dict, dict, str | None]:
  dims, bases = {}, {}
  for k, (_, res) in heads.items():
    n_harm = res["betti"] or 0
    dims[k] = {"n_forms": int(n_harm), "heads": int(res["trial_dim"]),
               "selected_by": res["criterion"]}
    if n_harm == 0:
      return dims, bases, (f"no harmonic {k}-form head: no Ritz value of the {res['trial_dim']} "
                           f"heads is separated by the gap criterion ({res['criterion']}; "
                           f"reference {res['reference']}); lowest Ritz values "
                           f"{np.asarray(res['eigenvalues'])[:5].round(6).tolist()}")
    bases[k] = np.asarray(res["vectors"][:, :n_harm].T, np.float64)  # [n_harm, heads]
  return dims, bases, None


def yukawa_report(heads: dict, cfg, results_dir: str | None) -> dict:
  """Y on the harmonic subspace of the learned heads (Rayleigh-Ritz vectors below the gap).

  Args:
    heads: {2: (h2_fn, Ritz result), 3: (h3_fn, Ritz result)} from validation.betti_report.
    cfg: config.yukawa (mc_samples, grid_ns, chunk, tucker_rank, seed).
    results_dir: where to write yukawa_tensor.npy / yukawa_tensor_mc.npy (None: nothing).
  """
  dims, bases, reason = _harmonic_bases(heads)
  if reason is not None:
    return {"tensor": None, "reason": reason, "basis": dims}
  (h2_fn, _), (h3_fn, _) = heads[2], heads[3]

  def make_fns(b2, b3):
    b2, b3 = jnp.asarray(b2, jnp.float32), jnp.asarray(b3, jnp.float32)
    return (lambda x: b2.astype(x.dtype) @ h2_fn(x)), (lambda x: b3.astype(x.dtype) @ h3_fn(x))

  omega_fn, big_phi_fn = make_fns(bases[2], bases[3])
  grid_ns = sorted(int(n) for n in cfg.grid_ns)
  by_grid = {n: integrate_with_means(omega_fn, big_phi_fn, grid_points(n), cfg.chunk)
             for n in grid_ns}
  y_grid, _, om_mean, ph_mean = by_grid[grid_ns[-1]]
  y_mc, err_mc = integrate(omega_fn, big_phi_fn, mc_points(cfg.mc_samples, cfg.seed), cfg.chunk)
  scale = float(np.max(np.abs(y_grid))) or 1.0
  if results_dir is not None:
    os.makedirs(results_dir, exist_ok=True)
    np.save(os.path.join(results_dir, "yukawa_tensor.npy"), y_grid)
    np.save(os.path.join(results_dir, "yukawa_tensor_mc.npy"), np.stack([y_mc, err_mc]))
  convergence = []
  for n in grid_ns:
    y_n = by_grid[n][0]
    diff = np.abs(y_mc - y_n)
    convergence.append({
        "grid": f"{n}^7", "max_abs_diff_to_finest_grid_rel": float(np.max(np.abs(y_n - y_grid))
                                                                   / scale),
        "mc_frac_within_3sigma": float(np.mean(diff <= 3 * err_mc + 1e-12 * scale)),
        "mc_max_diff_in_sigma": float(np.max(diff / np.maximum(err_mc, 1e-30)))})
  # (1) cup product of the classes (means) of the forms: equal to Y for closed forms.
  y_top = cup_product(om_mean, ph_mean)
  # (2) basis invariance: random orthogonal change of the harmonic basis, integrated again.
  rng = np.random.default_rng(cfg.seed + 1)
  q2 = np.linalg.qr(rng.normal(size=(bases[2].shape[0],) * 2))[0]
  q3 = np.linalg.qr(rng.normal(size=(bases[3].shape[0],) * 2))[0]
  y_rot = integrate(*make_fns(q2 @ bases[2], q3 @ bases[3]), grid_points(grid_ns[-1]), cfg.chunk)[0]
  sv = mode_singular_values(y_grid)
  sv_rot = mode_singular_values(y_rot)
  return {
      "tensor": "results/yukawa_tensor.npy", "shape": list(y_grid.shape), "basis": dims,
      "measure": "d^7x / (2 pi)^7 on T^7; forms L2(g)-orthonormal Ritz vectors of the heads",
      "mc_samples": int(cfg.mc_samples), "grids": [f"{n}^7" for n in grid_ns],
      "max_abs": scale, "mc_mean_stderr": float(np.mean(err_mc)),
      "grid_convergence": convergence,
      "cup_product_check_max_rel": float(np.max(np.abs(y_grid - y_top)) / scale),
      "basis_invariance_max_rel": float(max(np.max(np.abs(a - b)) / max(np.max(a), 1e-300)
                                            for a, b in zip(sv, sv_rot))),
      "mode_singular_values": [s.tolist() for s in sv],
      "singular_value_ratios": {f"mode{m}": _ratios(s) for m, s in enumerate(sv)},
      "tucker": tucker_summary(y_grid, cfg.tucker_rank),
      "mass_ratio_proxies": {"from_mode0": _ratios(sv[0]), "from_mode2": _ratios(sv[2])},
      "gift_targets_non_geometric": GIFT_TARGETS,
      "note": ("basis-invariant quantities only; GIFT's numbers are non-geometric targets (no map "
               "from these harmonic forms to fermion generations exists), shown for reference"),
  }
