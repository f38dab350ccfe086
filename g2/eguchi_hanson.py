"""Eguchi–Hanson × ℝ³: the local model of Joyce's resolution of T⁷/Γ (torsion-free, Hol = SU(2)).

Coordinates (y1, y2, y3, u1, u2, u3, u4) with z1 = u1 + i u2, z2 = u3 + i u4 on ℂ² \\ 0 (the
ℤ₂ = {±1} quotient and the exceptional sphere at u = 0 are outside the chart). Eguchi–Hanson is
the hyper-Kähler metric with Kähler potential (Joyce, "Compact Manifolds with Special Holonomy",
§7.2; Calabi's ansatz), v = |z|²,

    f_a(v) = s + a² log(v / (a² + s)),   s = sqrt(v² + a⁴),   (v f_a'(v) = s),

Kähler form ω_I = (i/2)∂∂̄f_a (real form: ¼ d(−df∘J)) and the flat holomorphic symplectic form
Ω = dz1∧dz2 (ω_J = Re Ω, ω_K = Im Ω). As a → 0, f → v and ω_I → du1∧du2 + du3∧du4 (flat ℂ²).
In the package's φ0 = e123 + e145 + e167 + e246 − e257 − e347 − e356 convention, with e1..e3 =
dy and e4..e7 = du, φ0 = dy123 + dy1∧ω_I⁰ + dy2∧Re Ω − dy3∧Im Ω, so

    φ_a = dy1∧dy2∧dy3 + dy1∧ω_I + dy2∧Re Ω − dy3∧Im Ω

is a torsion-free G2-structure on ℝ³ × EH (dφ = 0 since ω_I is closed and Ω constant; dψ = 0
since (ω_I, Re Ω, Im Ω) is a hyper-Kähler triple: f_a solves the Monge–Ampère equation). Its
metric is dy² + g_EH with g_EH(X, Y) = −ω_I(JX, Y).

Facts tested in tests/g2/test_eguchi_hanson.py: torsion-free and Ricci-flat to round-off;
|Riem|_g = 8√6 a⁴ / (v² + a⁴)^{3/2} at every point and scale a (measured to 1e-9 relative:
curvature decays like a⁴/r⁶, log-log slope −6.00); the L²-harmonic anti-self-dual
2-form α = (i/2)∂∂̄h with h'(v) = 1/(v s) (closed, primitive, so anti-self-dual and harmonic;
|α| = O(r⁻⁴)), which becomes the class in b2 that each resolved T³ adds; α ∈ Λ²₁₄ of φ_a.
"""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from g2 import examples
from g2 import forms

# Complex structure I on ℝ⁴ = ℂ²: J ∂u1 = ∂u2, J ∂u3 = ∂u4 (column b = J ∂u_b).
_J = ((0.0, -1.0, 0.0, 0.0), (1.0, 0.0, 0.0, 0.0), (0.0, 0.0, 0.0, -1.0), (0.0, 0.0, 1.0, 0.0))


def kahler_potential(a: float) -> Callable[[jax.Array], jax.Array]:
  """u [4] -> f_a(|u|²); a = 0 is the flat potential |u|²."""
  def f(u):
    v = jnp.sum(u * u)
    if a == 0:
      return v
    s = jnp.sqrt(v * v + a ** 4)
    return s + a * a * jnp.log(v / (a * a + s))
  return f


def asd_potential(a: float) -> Callable[[jax.Array], jax.Array]:
  """u [4] -> h(|u|²) with h' = 1/(v sqrt(v² + a⁴)): h = −asinh(a²/v)/a² (−1/v when a = 0)."""
  def h(u):
    v = jnp.sum(u * u)
    if a == 0:
      return -1.0 / v
    return -jnp.arcsinh(a * a / v) / (a * a)
  return h


def kahler_form(potential: Callable[[jax.Array], jax.Array]) -> Callable[[jax.Array], jax.Array]:
  """u [4] -> the real 2-form (i/2)∂∂̄F as a matrix [4, 4]: −¼ (H J − (H J)ᵀ), H = Hess F."""
  def omega(u):
    hj = jax.hessian(potential)(u) @ jnp.asarray(_J, u.dtype)
    return -0.25 * (hj - hj.T)
  return omega


def _two_form_7d(mat4: jax.Array) -> jax.Array:
  """A 2-form on the u-block (matrix [4, 4]) as components [21] of a 7-form on (y, u)."""
  full = jnp.zeros((7, 7), mat4.dtype).at[3:, 3:].set(mat4)
  return forms.from_tensor(full, 2)


def _flat_triple(dtype):
  """(Re Ω, Im Ω) for Ω = dz1∧dz2 = (du1 + i du2)∧(du3 + i du4), as [21] components."""
  e = lambda i: jnp.zeros(7, dtype).at[3 + i].set(1.0)
  w = lambda i, j: forms.wedge(e(i), 1, e(j), 1)
  return w(0, 2) - w(1, 3), w(0, 3) + w(1, 2)


def phi(a: float) -> Callable[[jax.Array], jax.Array]:
  """x [7] = (y, u) -> φ_a components [35]."""
  omega_i = kahler_form(kahler_potential(a))

  def phi_fn(x):
    dtype = x.dtype
    dy = [jnp.zeros(7, dtype).at[i].set(1.0) for i in range(3)]
    re, im = _flat_triple(dtype)
    w_i = _two_form_7d(omega_i(x[3:]))
    out = forms.wedge(forms.wedge(dy[0], 1, dy[1], 1), 2, dy[2], 1)
    return (out + forms.wedge(dy[0], 1, w_i, 2) + forms.wedge(dy[1], 1, re, 2)
            - forms.wedge(dy[2], 1, im, 2))
  return phi_fn


def metric(a: float) -> Callable[[jax.Array], jax.Array]:
  """x [7] -> closed-form g = dy² + g_EH, g_EH = −Jᵀ ω_I [7, 7]."""
  omega_i = kahler_form(kahler_potential(a))

  def metric_fn(x):
    j = jnp.asarray(_J, x.dtype)
    g_eh = -(j.T @ omega_i(x[3:]))
    return jnp.zeros((7, 7), x.dtype).at[:3, :3].set(jnp.eye(3, dtype=x.dtype)).at[3:, 3:].set(g_eh)
  return metric_fn


def harmonic_asd_form(a: float) -> Callable[[jax.Array], jax.Array]:
  """x [7] -> the L²-harmonic anti-self-dual 2-form α = (i/2)∂∂̄h of EH, components [21]."""
  alpha = kahler_form(asd_potential(a))
  return lambda x: _two_form_7d(alpha(x[3:]))


def eguchi_hanson_r3(a: float = 1.0, r_range: tuple[float, float] = (0.7, 2.5)) -> examples.Example:
  """ℝ³ × Eguchi–Hanson(a) as an `examples.Example` (points with |u| ∈ a·r_range, y ∈ [−1, 1]³)."""
  if not a > 0 or not 0 < r_range[0] < r_range[1]:
    raise ValueError(f"(a, r_range)={(a, r_range)!r} is invalid: allowed a > 0 and 0 < r_min < r_max")

  def sample(key, n):
    ky, kd, kr = jax.random.split(key, 3)
    y = jax.random.uniform(ky, (n, 3), minval=-1.0, maxval=1.0)
    d = jax.random.normal(kd, (n, 4))
    d = d / jnp.linalg.norm(d, axis=-1, keepdims=True)
    r = jax.random.uniform(kr, (n, 1), minval=r_range[0] * a, maxval=r_range[1] * a)
    return jnp.concatenate([y, r * d], axis=-1)

  return examples.Example(
      name="eguchi_hanson_r3", coordinates=("y1", "y2", "y3", "u1", "u2", "u3", "u4"),
      phi_fn=phi(a), metric_fn=metric(a), sample=sample, torsion_free=True,
      expected={k: examples._zero_torsion for k in ("dphi_sq", "dpsi_sq", "tau1_sq", "nabla_phi_sq")})
