"""Levi-Civita connection and curvature of a metric field by nested jacfwd; |∇φ| holonomy test.

All functions take a field (a function of one point x [7]) and return a function of x;
`jax.vmap` batches them. Index conventions:
  christoffel: Γ[k, i, j] = Γ^k_ij = ½ g^{kl} (∂_i g_jl + ∂_j g_il − ∂_l g_ij);
  riemann:     R[a, b, c, d] = R^a_{bcd} = ∂_c Γ^a_{db} − ∂_d Γ^a_{cb} + Γ^a_{ce} Γ^e_{db} − Γ^a_{de} Γ^e_{cb};
  ricci:       Ric[b, d] = R^a_{bad};  scalar = g^{bd} Ric_bd.
(Sphere of radius ρ: Ric = (n−1)/ρ² g, scalar = n(n−1)/ρ² — checked in the tests.)
"""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from g2 import forms
from g2 import g2form

MetricFn = Callable[[jax.Array], jax.Array]


def _christoffel_from(g_inv: jax.Array, dg: jax.Array) -> jax.Array:
  """Γ^k_ij from g^-1 [7, 7] and dg[i, j, l] = ∂_l g_ij."""
  # lowered[l, i, j] = ½ (∂_i g_jl + ∂_j g_il − ∂_l g_ij)
  lowered = 0.5 * (jnp.einsum("jli->lij", dg) + jnp.einsum("ilj->lij", dg)
                   - jnp.einsum("ijl->lij", dg))
  return jnp.einsum("kl,lij->kij", g_inv, lowered)


def christoffel(metric_fn: MetricFn) -> Callable[[jax.Array], jax.Array]:
  """x -> Γ^k_ij [7, 7, 7] of the metric field metric_fn: x [7] -> g [7, 7]."""
  def gamma(x):
    dg, g = jax.jacfwd(lambda y: (lambda m: (m, m))(metric_fn(y)), has_aux=True)(x)
    g_inv, _ = forms.metric_inverse_and_volume(g)
    return _christoffel_from(g_inv, dg)
  return gamma


def _curvature_parts(metric_fn: MetricFn, x: jax.Array):
  gamma_fn = christoffel(metric_fn)
  d_gamma, gamma = jax.jacfwd(lambda y: (lambda c: (c, c))(gamma_fn(y)), has_aux=True)(x)
  # d_gamma[a, b, c, m] = ∂_m Γ^a_bc
  riem = (jnp.einsum("adbc->abcd", d_gamma) - jnp.einsum("acbd->abcd", d_gamma)
          + jnp.einsum("ace,edb->abcd", gamma, gamma) - jnp.einsum("ade,ecb->abcd", gamma, gamma))
  return riem


def riemann(metric_fn: MetricFn) -> Callable[[jax.Array], jax.Array]:
  """x -> R^a_{bcd} [7, 7, 7, 7] (second derivatives of g by nested jacfwd)."""
  return lambda x: _curvature_parts(metric_fn, x)


def ricci(metric_fn: MetricFn) -> Callable[[jax.Array], jax.Array]:
  """x -> Ric_bd = R^a_{bad} [7, 7]."""
  return lambda x: jnp.einsum("abad->bd", _curvature_parts(metric_fn, x))


def scalar_curvature(metric_fn: MetricFn) -> Callable[[jax.Array], jax.Array]:
  """x -> R = g^{bd} Ric_bd."""
  def scalar(x):
    g_inv, _ = forms.metric_inverse_and_volume(metric_fn(x))
    return jnp.einsum("bd,bd->", g_inv, ricci(metric_fn)(x))
  return scalar


def curvature_norms(metric_fn: MetricFn) -> Callable[[jax.Array], dict]:
  """x -> {'riemann': |Riem|_g, 'ricci': |Ric|_g, 'scalar': R} (full tensor norms with g)."""
  def norms(x):
    g = metric_fn(x)
    g_inv, _ = forms.metric_inverse_and_volume(g)
    riem = _curvature_parts(metric_fn, x)
    riem_low = jnp.einsum("ae,ebcd->abcd", g, riem)
    riem_up = jnp.einsum("bf,cp,dq,afpq->abcd", g_inv, g_inv, g_inv, riem)
    ric = jnp.einsum("abad->bd", riem)
    ric_up = jnp.einsum("bp,dq,pq->bd", g_inv, g_inv, ric)
    return dict(riemann=jnp.sqrt(jnp.sum(riem_low * riem_up)),
                ricci=jnp.sqrt(jnp.sum(ric * ric_up)),
                scalar=jnp.einsum("bd,bd->", g_inv, ric))
  return norms


def nabla_phi(phi_fn: Callable[[jax.Array], jax.Array]) -> Callable[[jax.Array], jax.Array]:
  """x -> (∇_i φ)_{jkl} [7, 35], with the Levi-Civita connection of g_φ.

  ∇_i φ_jkl = ∂_i φ_jkl − Γ^m_ij φ_mkl − Γ^m_ik φ_jml − Γ^m_il φ_jkm.
  """
  def metric_fn(y):
    return g2form.metric_from_phi(phi_fn(y))[0]

  def nab(x):
    jac, phi = jax.jacfwd(lambda y: (lambda p: (p, p))(phi_fn(y)), has_aux=True)(x)
    gamma = christoffel(metric_fn)(x)
    t = forms.to_tensor(phi, 3)
    corr = (jnp.einsum("mij,mkl->ijkl", gamma, t) + jnp.einsum("mik,jml->ijkl", gamma, t)
            + jnp.einsum("mil,jkm->ijkl", gamma, t))
    return jnp.swapaxes(jac, 0, 1) - forms.from_tensor(corr, 3)
  return nab


def nabla_phi_norm(phi_fn: Callable[[jax.Array], jax.Array]) -> Callable[[jax.Array], jax.Array]:
  """x -> |∇φ|_g = sqrt(g^{ii'} <∇_iφ, ∇_i'φ>_g): zero iff φ is torsion-free (honest holonomy test)."""
  nab_fn = nabla_phi(phi_fn)

  def norm(x):
    nab = nab_fn(x)
    g, g_inv, sqrt_det_g = g2form.metric_data_from_phi(phi_fn(x))
    raised = forms.raise_indices(nab, 3, g, g_inv=g_inv, sqrt_det_g=sqrt_det_g)
    return jnp.sqrt(jnp.einsum("ij,ic,jc->", g_inv, nab, raised))
  return norm
