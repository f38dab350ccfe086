"""The original ResNet-BK hybrid analytic gradient (GRAD_BLEND) as a jax.custom_vjp option.

Reference bk.md section 1.3. With g_hat = dL/dRe G + i dL/dIm G (JAX passes the cotangent
conj(g_hat) for a real loss), the original replaces the exact Jacobian dG_jj/dv_i = -G_ij G_ji by
  theoretical   t = -Re(conj(g_hat) G_ii^2)         (diagonal of the Jacobian only),
  hypothesis-7  h = -Re(conj(g_hat) / (D + 1e-6)),  D = G_ii^2 with |D| clamped to >= 1e-3,
  grad_v = (1 - alpha) t + alpha h, clipped to +-1000,
where alpha = GRAD_BLEND. ``legacy=True`` is its Nov-14 form without the conjugate (g_hat in
place of conj(g_hat)), which flips the sign of the Im-part contribution. Gradients flow to the
diagonal only (b, c and z were buffers in the original). Unlike the original, NaN/Inf gradients
are not replaced by zero.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

MIN_ABS_D = 1e-3     # clamp of |G^2| in the hypothesis-7 term (original, Nov 2025)
EPS_D = 1e-6         # added to D before dividing (original)
GRAD_CLIP = 1000.0   # final clip of the potential gradient (original, Nov 2025)


def hybrid_vjp_formula(g: jax.Array, cotangent: jax.Array, grad_blend: float,
                       legacy: bool) -> jax.Array:
  """The hybrid gradient w.r.t. the diagonal from the output G and JAX's cotangent [..., N]."""
  g_hat_conj = jnp.conj(cotangent) if legacy else cotangent
  g2 = g * g
  theoretical = -jnp.real(g_hat_conj * g2)
  abs_d = jnp.abs(g2)
  phase = jnp.where(abs_d > 0, g2 / jnp.where(abs_d > 0, abs_d, 1.0), 1.0)
  d = jnp.where(abs_d < MIN_ABS_D, MIN_ABS_D * phase, g2)
  hypothesis7 = -jnp.real(g_hat_conj / (d + EPS_D))
  grad = (1.0 - grad_blend) * theoretical + grad_blend * hypothesis7
  return jnp.clip(grad, -GRAD_CLIP, GRAD_CLIP)


def hybrid_gradient(fn, a, b, c, z_re, z_im, grad_blend: float, legacy: bool) -> jax.Array:
  """fn(a, b, c, z_re, z_im) -> complex G with the hybrid gradient in place of the exact one."""
  return _hybrid(fn, grad_blend, legacy, a, b, c, z_re, z_im)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1, 2))
def _hybrid(fn, grad_blend, legacy, a, b, c, z_re, z_im):
  return fn(a, b, c, z_re, z_im)


def _hybrid_fwd(fn, grad_blend, legacy, a, b, c, z_re, z_im):
  g = fn(a, b, c, z_re, z_im)
  return g, (g, b, c, z_re, z_im)


def _hybrid_bwd(fn, grad_blend, legacy, residuals, cotangent):
  del fn
  g, b, c, z_re, z_im = residuals
  grad_a = hybrid_vjp_formula(g, cotangent, grad_blend, legacy).astype(b.dtype)
  return (grad_a, jnp.zeros_like(b), jnp.zeros_like(c), jnp.zeros_like(z_re),
          jnp.zeros_like(z_im))


_hybrid.defvjp(_hybrid_fwd, _hybrid_bwd)
