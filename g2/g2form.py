"""G2 structures from a 3-form: φ0, the metric g_φ, ψ = ⋆φ and the torsion (reference g2.md §3).

metric_from_phi uses the correct, homogeneous-of-degree-2/3 formula
  B_ij = (1/144) ε^{a1..a7} φ_{i a1 a2} φ_{j a3 a4} φ_{a5 a6 a7},   g = det(B)^(-1/9) B,
evaluated as (e_i⌟φ)∧(e_j⌟φ)∧φ = 6 B_ij dx^{1..7} with a 210-term sparse table (not the
original's g_ij = (1/6) φ_ikl φ_jkl, which is right only for φ0 in an orthonormal frame).
φ is positive iff B is positive definite (orientation ε_{1..7} = +1); a non-positive φ has
no metric: eager calls raise ValueError, traced calls return NaN (a pivot <= 0) so the
loss, and the training loop's non-finite check, see it. Nothing replaces NaN.
"""
from __future__ import annotations

import functools
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from g2 import forms

# φ0 = e123 + e145 + e167 + e246 − e257 − e347 − e356 (1-indexed; Bryant / Joyce convention).
_PHI0_TERMS = ((1, 2, 3, 1), (1, 4, 5, 1), (1, 6, 7, 1), (2, 4, 6, 1), (2, 5, 7, -1),
               (3, 4, 7, -1), (3, 5, 6, -1))
# ψ0 = ⋆φ0 = e4567 + e2367 + e2345 + e1357 − e1346 − e1256 − e1247.
_PSI0_TERMS = ((4, 5, 6, 7, 1), (2, 3, 6, 7, 1), (2, 3, 4, 5, 1), (1, 3, 5, 7, 1),
               (1, 3, 4, 6, -1), (1, 2, 5, 6, -1), (1, 2, 4, 7, -1))


def _from_terms(terms, k: int, dtype) -> jax.Array:
  out = np.zeros(forms.num_components(k))
  for *idx, s in terms:
    out[forms.component_index([i - 1 for i in idx])] = s
  return jnp.asarray(out, dtype=dtype)


def phi0(dtype=None) -> jax.Array:
  """The flat G2 3-form φ0: [35] components (default float dtype unless given)."""
  return _from_terms(_PHI0_TERMS, 3, dtype or jnp.result_type(float))


def psi0(dtype=None) -> jax.Array:
  """ψ0 = ⋆φ0: [35] four-form components."""
  return _from_terms(_PSI0_TERMS, 4, dtype or jnp.result_type(float))


@functools.lru_cache(maxsize=None)
def _b_tables() -> tuple[np.ndarray, np.ndarray]:
  """U [35, 7, 21]: (e_i⌟φ)_a = sum_c U[c, i, a] φ_c;  T [35, 21, 21]: u∧v∧φ = sum T[c, a, b] u_a v_b φ_c vol."""
  interior = forms._interior_tensor(3)  # [7, 35, 21]
  w22, w43 = forms._wedge_tensor(2, 2), forms._wedge_tensor(4, 3)[..., 0]
  triple = np.einsum("abk,kc->cab", w22.astype(np.int64), w43.astype(np.int64))
  return np.transpose(interior, (1, 0, 2)), triple


def bilinear_b(phi: jax.typing.ArrayLike) -> jax.Array:
  """B_ij(φ) = (1/144) ε φ_{i..} φ_{j..} φ_{...}, cubic in φ: [..., 35] -> [..., 7, 7].

  Evaluated as 6 B_ij vol = (e_i⌟φ)∧(e_j⌟φ)∧φ with two constant ±1 tables (reference §3.2).
  """
  phi = jnp.asarray(phi)
  forms._check_components(phi, 3, "phi")
  u_table, t_table = _b_tables()
  hi = jax.lax.Precision.HIGHEST
  u = jnp.einsum("...c,cia->...ia", phi, jnp.asarray(u_table, phi.dtype), precision=hi)
  m = jnp.einsum("...c,cab->...ab", phi, jnp.asarray(t_table, phi.dtype), precision=hi)
  return jnp.einsum("...ia,...ab,...jb->...ij", u, m, u, precision=hi) / 6.0


def _is_concrete(x) -> bool:
  return not isinstance(x, jax.core.Tracer)


def _reject_if_not_positive(phi, b) -> None:
  if _is_concrete(b):
    eig = np.linalg.eigvalsh(np.asarray(b))
    bad = np.nonzero(~(eig[..., 0] > 0))[0] if eig.ndim > 1 else ([0] if not eig[0] > 0 else [])
    if len(bad):
      n = int(bad[0])
      raise ValueError(
          f"phi={np.asarray(phi).reshape(-1, 35)[n].round(4).tolist()} is invalid: allowed a "
          f"positive 3-form (B(phi) positive definite with ε_1..7=+1); B has eigenvalues "
          f"{eig.reshape(-1, 7)[n].round(6).tolist()}")


def metric_data_from_phi(phi: jax.typing.ArrayLike) -> tuple[jax.Array, jax.Array, jax.Array]:
  """(g_φ, g_φ^-1, sqrt(det g_φ)) of a positive 3-form [..., 35]; NaN if traced and not positive."""
  phi = jnp.asarray(phi)
  b = bilinear_b(phi)
  _reject_if_not_positive(phi, b)
  b_inv, log_det_b = forms.spd_inverse_and_logdet(b)  # NaN unless B is positive definite.
  scale = jnp.exp(-log_det_b / 9.0)[..., None, None]
  return scale * b, b_inv / scale, jnp.exp(log_det_b / 9.0)


def metric_from_phi(phi: jax.typing.ArrayLike) -> tuple[jax.Array, jax.Array]:
  """(g, sqrt_det_g) with g = det(B)^(-1/9) B and sqrt(det g) = det(B)^(1/9) (reference §3.2).

  Args:
    phi: 3-form components [..., 35].
  Returns:
    g [..., 7, 7] and sqrt_det_g [...]. A non-positive φ raises ValueError when called
    eagerly and gives NaN under jit/vmap/grad.
  """
  g, _, sqrt_det_g = metric_data_from_phi(phi)
  return g, sqrt_det_g


def positivity_margin(phi: jax.typing.ArrayLike) -> jax.Array:
  """Scale-invariant positivity of φ: λ_min(B) / det(B)^(1/7) (1 for φ0, <= 0 if not positive)."""
  b = bilinear_b(phi)
  eig = jnp.linalg.eigvalsh(b)
  det = jnp.prod(eig, axis=-1)
  return eig[..., 0] / jnp.abs(det) ** (1.0 / 7.0)


def psi_from_phi(phi: jax.typing.ArrayLike) -> jax.Array:
  """ψ = ⋆_{g_φ} φ: [..., 35] 3-form -> [..., 35] 4-form."""
  g, g_inv, sqrt_det_g = metric_data_from_phi(phi)
  return forms.hodge_star(phi, 3, g, g_inv=g_inv, sqrt_det_g=sqrt_det_g)


def psi_tangents(phi: jax.Array, phi_dots: jax.Array, metric_data=None
                 ) -> tuple[jax.Array, jax.Array]:
  """ψ = ⋆_{g_φ}φ and its derivatives ψ̇ = DΨ(φ)[φ̇] along several tangents, at one point.

  Uses the linearisation of φ -> ψ (Joyce, Compact Manifolds with Special Holonomy, Prop. 10.3.5;
  checked against jax.jvp in the tests): with φ̇ = 3f0 φ + X⌟ψ + η (η ∈ Λ³_27),
  ψ̇ = ⋆(4/3 π1 − π27 + π7) φ̇ = −⋆φ̇ + (1/3)<φ̇, φ> ψ − 2 X♭∧φ,
  <φ̇, φ> = (φ̇∧ψ)/sqrt(det g),  X♭ = (1/4) ⋆(φ̇∧φ).
  So the metric code is evaluated once (no tangents through B or the inverse) and each tangent
  costs one Hodge star with a fixed metric plus a few constant contractions.

  Args:
    phi: [35] a positive 3-form.
    phi_dots: [n, 35] tangents.
    metric_data: optional (g, g_inv, sqrt_det_g) of phi.
  Returns:
    psi [35] and psi_dots [n, 35].
  """
  g, g_inv, sqrt_det_g = metric_data if metric_data is not None else metric_data_from_phi(phi)
  md = dict(g_inv=g_inv, sqrt_det_g=sqrt_det_g)
  psi = forms.hodge_star(phi, 3, g, **md)
  hi = jax.lax.Precision.HIGHEST
  dtype = phi.dtype
  w34 = jnp.asarray(forms._wedge_tensor(3, 4)[..., 0], dtype)  # [35, 35]
  w33 = jnp.asarray(forms._wedge_tensor(3, 3), dtype)  # [35, 35, 21]
  w13 = jnp.asarray(forms._wedge_tensor(1, 3), dtype)  # [7, 35, 35]
  inner = jnp.einsum("ti,ij,j->t", phi_dots, w34, psi, precision=hi) / sqrt_det_g
  six = jnp.einsum("ti,ijk,j->tk", phi_dots, w33, phi, precision=hi)  # φ̇∧φ
  x_flat = 0.25 * forms.hodge_star(six, 6, g, **md)
  x_wedge_phi = jnp.einsum("ta,abk,b->tk", x_flat, w13, phi, precision=hi)
  star_dots = forms.hodge_star(phi_dots, 3, g, **md)
  return psi, -star_dots + (inner[:, None] / 3.0) * psi - 2.0 * x_wedge_phi


def _dpsi_from_jacobian(phi, jac, psi, g, g_inv, sqrt_det_g) -> jax.Array:
  """dψ = Σ_i dx^i ∧ ∂_iψ at one point from jac[I, i] = ∂_iφ_I, with ψ̇ as in psi_tangents.

  The expensive part −Σ_i dx^i∧⋆(∂_iφ) is folded into a single Hodge star of a 2-form,
  Σ_i e^i∧⋆β_i = ⋆(Σ_ij g^{ij} e_j⌟β_i), instead of seven 3-form stars.
  """
  md = dict(g_inv=g_inv, sqrt_det_g=sqrt_det_g)
  hi = jax.lax.Precision.HIGHEST
  dtype = phi.dtype
  w34 = jnp.asarray(forms._wedge_tensor(3, 4)[..., 0], dtype)  # [35, 35]
  w33 = jnp.asarray(forms._wedge_tensor(3, 3), dtype)  # [35, 35, 21]
  w13 = jnp.asarray(forms._wedge_tensor(1, 3), dtype)  # [7, 35, 35]
  w14 = jnp.asarray(forms._wedge_tensor(1, 4), dtype)  # [7, 35, 21]
  interior3 = jnp.asarray(forms._interior_tensor(3), dtype)  # [7, 35, 21]
  inner = jnp.einsum("it,ij,j->t", jac, w34, psi, precision=hi) / sqrt_det_g  # <∂_tφ, φ>
  six = jnp.einsum("it,ijk,j->tk", jac, w33, phi, precision=hi)  # ∂_tφ ∧ φ
  x_flat = 0.25 * forms.hodge_star(six, 6, g, **md)  # [7 (t), 7]
  rest = ((inner[:, None] / 3.0) * psi
          - 2.0 * jnp.einsum("ta,abk,b->tk", x_flat, w13, phi, precision=hi))  # [7 (t), 35]
  d_rest = jnp.einsum("tk,tkm->m", rest, w14, precision=hi)
  div = jnp.einsum("ij,Ii,jIa->a", g_inv, jac, interior3, precision=hi)
  return d_rest - forms.hodge_star(div, 2, g, **md)


def torsion(phi_fn: Callable[[jax.Array], jax.Array]) -> Callable[[jax.Array], dict]:
  """x -> torsion of the G2 structure φ(x) at one point x [7] (reference §3.3).

  Returns a dict of scalars:
    dphi_sq: |dφ|²_g;  dpsi_sq: |dψ|²_g (ψ = ⋆_{g_φ}φ, g = g_φ);
    tau0 = (1/7) ⋆(φ∧dφ);  tau1_sq = |τ1|²_g with τ1 = (1/12) ⋆(φ∧⋆dφ);
    sqrt_det_g: volume density of g_φ (for integrating the torsion).
  dφ comes from one jacfwd of phi_fn (7 tangents); dψ = Σ dx^i∧DΨ(φ)[∂_iφ] from the
  closed-form linearisation of φ -> ψ (see psi_tangents), so the metric code is evaluated once
  per point and never differentiated in x. Use jax.vmap to batch.
  """
  def f(x: jax.Array) -> dict:
    jac, phi = jax.jacfwd(lambda y: (lambda p: (p, p))(phi_fn(y)), has_aux=True)(x)
    g, g_inv, sqrt_det_g = metric_data_from_phi(phi)
    md = dict(g_inv=g_inv, sqrt_det_g=sqrt_det_g)
    psi = forms.hodge_star(phi, 3, g, **md)
    dphi = forms.exterior_derivative_from_jacobian(jac, 3)
    dpsi = _dpsi_from_jacobian(phi, jac, psi, g, g_inv, sqrt_det_g)
    vol_coeff = forms.wedge(phi, 3, dphi, 4)[..., 0]  # φ∧dφ = c dx^{1..7}; ⋆ of it = c / sqrt g
    star_dphi = forms.hodge_star(dphi, 4, g, **md)
    tau1 = forms.hodge_star(forms.wedge(phi, 3, star_dphi, 3), 6, g, **md) / 12.0
    return dict(
        dphi_sq=forms.norm_sq(dphi, 4, g, **md),
        dpsi_sq=forms.norm_sq(dpsi, 5, g, **md),
        tau0=vol_coeff / sqrt_det_g / 7.0,
        tau1_sq=forms.norm_sq(tau1, 1, g, **md),
        sqrt_det_g=sqrt_det_g,
    )

  return f


def pullback(phi: jax.typing.ArrayLike, a: jax.typing.ArrayLike) -> jax.Array:
  """(A^*φ)_ijk = A_ai A_bj A_ck φ_abc: 3-form [..., 35], matrix [..., 7, 7] -> [..., 35]."""
  t = forms.to_tensor(phi, 3)
  t = jnp.einsum("...ai,...bj,...ck,...abc->...ijk", a, a, a, t)
  return forms.from_tensor(t, 3)


__all__ = ["phi0", "psi0", "bilinear_b", "metric_from_phi", "metric_data_from_phi",
           "positivity_margin", "psi_from_phi", "psi_tangents", "torsion", "pullback"]
