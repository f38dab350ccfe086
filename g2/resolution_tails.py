"""Trial forms with global tails for the spectrum of M_t (issue 16, stage 4; `g2.resolution_spectrum`
with `tails=True`): per singular T³ one closed 2-form that is the Eguchi–Hanson L²-harmonic form
near the torus and continues its |u|⁻⁴ tail over T⁷ by the periodic Green's function, instead of
cutting it off at |u| ≤ r_cut as the local forms do.

Green's function of the transverse 4-torus ℝ⁴/2πℤ⁴ (Ewald split at heat-kernel time a, η² = 1/4a):

    G(u) = Σ_{n ∈ 2πℤ⁴} e^{−|u−n|²/4a}/|u−n|² + (1/4π²) Σ_{k ≠ 0} e^{−a|k|²} cos(k·u)/|k|² − a/4π²,

(the Fourier transform of (1 − e^{−η²r²})/r² in ℝ⁴ is 4π² e^{−|k|²/4η²}/|k|², whose finite part at
k → 0, −π²/η², gives the constant: G does not depend on a, tested). G = 1/|u|² + smooth near 0 and
ΔG = 1/4π² (the uniform background) elsewhere (tested). Real space: the nearest image and its 15
neighbours toward u (excluded images are ≥ 2π away); Fourier space: |k|² ≤ k2_max.

Tail form of one chart (y, u) (`resolution.charts`), with the chart's complex structure I and its
cut-off χ(v), v = |u|² (the local forms' χ of `SpectrumSettings`):

    α = (i/2)∂∂̄F,   F = −G(u) + χ(v)·(h_t(v) + 1/v),   h_t′ = 1/(v√(v² + t⁴))  (`eh.asd_potential`),

so near the torus F = h_t + smooth (α is the Eguchi–Hanson harmonic form plus a smooth closed
form) and outside the cut-off α = (i/2)∂∂̄(−G): closed, and away from the lattice points its
self-dual part is the constant −(ΔG/8)·ω_I, the rest anti-self-dual, so α is flat-harmonic there. The bracket
h_t + 1/v = t⁴/(6v³) + … , so the cut-off only touches an O(t⁴/|u|⁸) term. The trial 2-form of orbit
o is the sum of α over its 4 charts (mapped to x components; the stabiliser u ↦ −u leaves α fixed),
so it is Γ-invariant (tested); its 3-forms are the sums of dy^i ∧ α (i = 1..3, chart's y). The
constant trace parts sum to a Γ-invariant constant 2-form, which is 0 (b2 of T⁷/Γ is 0).

What is not smooth on the blow-up: the value at u = 0 of the smooth remainder's anti-self-dual part
(the other 3 tubes of the orbit and the regular part of G), a constant ASD form (constant forms pulled
back from the orbifold are not smooth at the exceptional sphere; README, φ_t^G). `core_asd` measures
it; with `subtract_core=True` it is removed by −(i/2)∂∂̄(χ q) with q the trace-free quadratic whose
(i/2)∂∂̄ is that constant (closed; the sum then vanishes to second order at the torus).
"""
from __future__ import annotations

import functools
import itertools
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from g2 import eguchi_hanson as eh
from g2 import forms
from g2 import resolution as res

DEFAULT_A = 0.75  # heat-kernel time of the Ewald split (real-space error ~ e^{−π²/a}/4π² ≈ 5e-8)
DEFAULT_K2 = 20  # Fourier modes |k|² ≤ k2_max (error ~ e^{−a k2}/k2 ≈ 1.5e-8)


@functools.lru_cache(maxsize=None)
def _modes(k2_max: int) -> np.ndarray:
  """Half of the k ∈ ℤ⁴ \\ 0 with |k|² ≤ k2_max (one of each ±k)."""
  m = int(np.floor(np.sqrt(k2_max)))
  return np.asarray([k for k in itertools.product(range(-m, m + 1), repeat=4)
                     if 0 < sum(i * i for i in k) <= k2_max and tuple(k) > tuple(-i for i in k)], float)


def _images(u: jax.Array) -> jax.Array:
  """The 16 images u − n (n ∈ 2πℤ⁴) nearest to 0: the nearest and its neighbours toward u [16, 4]."""
  dt = u.dtype
  d = u - jnp.round(u / res.TWO_PI) * res.TWO_PI  # in [−π, π]
  s = jnp.where(d >= 0, 1.0, -1.0).astype(dt)
  off = jnp.asarray(list(itertools.product((0.0, 1.0), repeat=4)), dt)
  return d[None, :] - off * s[None, :] * res.TWO_PI


def _real_part(a: float, subtract=None):
  """u -> Σ over the 16 images of e^{−|·|²/4a}/|·|², or with `subtract` (v -> c(v), = 1 near 0)
  the nearest one's term minus c(v)/v, written without cancellation."""
  def f(u):
    im = _images(u)
    v = jnp.sum(im * im, axis=1)
    far = jnp.sum(jnp.exp(-v[1:] / (4 * a)) / v[1:])
    v0 = v[0]
    if subtract is None:
      return far + jnp.exp(-v0 / (4 * a)) / v0
    small = v0 < 1e-12
    vs = jnp.where(small, 1.0, v0)
    near = jnp.where(small, -1.0 / (4 * a), (jnp.expm1(-vs / (4 * a)) + 1.0 - subtract(vs)) / vs)
    return far + near
  return f


def green(a: float = DEFAULT_A, k2_max: int = DEFAULT_K2) -> Callable[[jax.Array], jax.Array]:
  """u [4] -> G(u), the Green's function of ℝ⁴/2πℤ⁴ (module doc)."""
  ks = _modes(k2_max)
  ksq = np.sum(ks * ks, axis=1)
  coef = 2.0 / (4 * np.pi ** 2) * np.exp(-a * ksq) / ksq  # 2: both ±k
  real = _real_part(a)

  def g(u):
    dt = u.dtype
    return (real(u) + jnp.sum(jnp.asarray(coef, dt) * jnp.cos(jnp.asarray(ks, dt) @ u))
            - a / (4 * np.pi ** 2))
  return g


def potential_hessian(t, lo: float, hi: float, a: float = DEFAULT_A,
                      k2_max: int = DEFAULT_K2) -> Callable[[jax.Array], jax.Array]:
  """u [4] -> Hess F [4, 4] of F = −G + χ(v)(h_t + 1/v) (module doc); the Fourier part of G
  differentiated in closed form (cheap under the outer autodiff of the spectrum)."""
  ks = _modes(k2_max)
  ksq = np.sum(ks * ks, axis=1)
  coef = 2.0 / (4 * np.pi ** 2) * np.exp(-a * ksq) / ksq
  kk = np.einsum("ma,mb->mab", ks, ks).reshape(len(ks), 16) * coef[:, None]
  chi = lambda v: res.smooth_step((hi - v) / (hi - lo))
  real = _real_part(a, subtract=chi)  # G_real − χ/v

  def scalar(u):  # −(G_real − χ/v) + χ h_t
    v = jnp.sum(u * u)
    tt = jnp.asarray(t, u.dtype)
    return -real(u) + chi(v) * (-jnp.arcsinh(tt * tt / v) / (tt * tt))  # h_t (eh.asd_potential)

  def hess(u):
    dt = u.dtype
    c = jnp.cos(jnp.asarray(ks, dt) @ u)  # Hess of −Σ coef cos(k·u) is +Σ coef k kᵀ cos(k·u)
    return jax.hessian(scalar)(u) + (c @ jnp.asarray(kk, dt)).reshape(4, 4)
  return hess


def form_of_hessian(h: jax.Array) -> jax.Array:
  """Hess F [4, 4] -> (i/2)∂∂̄F [4, 4] in the chart's complex structure (as `eh.kahler_form`)."""
  hj = h @ jnp.asarray(eh._J, h.dtype)  # pylint: disable=protected-access
  return -0.25 * (hj - hj.T)


@functools.lru_cache(maxsize=None)
def _chart_maps(k: int) -> np.ndarray:
  from g2 import resolution_spectrum as rs  # pylint: disable=g-import-not-at-top
  return rs._chart_maps(k)  # pylint: disable=protected-access


def _asd_basis() -> np.ndarray:
  """Symmetric trace-free S [3, 4, 4] whose forms (i/2)∂∂̄(½ uᵀSu) = form_of_hessian(S) are the
  three constant anti-self-dual forms du12 − du34, du13 + du24, du14 − du23 (flat, orientation
  du1234)."""
  targets = []
  for (a, b), (c, d), sgn in (((0, 1), (2, 3), -1), ((0, 2), (1, 3), 1), ((0, 3), (1, 2), -1)):
    m = np.zeros((4, 4))
    m[a, b], m[b, a], m[c, d], m[d, c] = 1, -1, sgn, -sgn
    targets.append(m)
  # linear map S (symmetric, 10 params) -> form; solve least squares per target
  sym = []
  for i, j in itertools.combinations_with_replacement(range(4), 2):
    e = np.zeros((4, 4))
    e[i, j] = e[j, i] = 1.0
    sym.append(e)
  sym = np.stack(sym)
  jm = np.asarray(eh._J)  # pylint: disable=protected-access
  lin = np.stack([(-0.25 * (s @ jm - (s @ jm).T)).ravel() for s in sym], 1)  # [16, 10]
  out = []
  for tgt in targets:
    coef, *_ = np.linalg.lstsq(lin, tgt.ravel(), rcond=None)
    assert np.allclose(lin @ coef, tgt.ravel(), atol=1e-12)
    s = np.einsum("n,nab->ab", coef, sym)
    out.append(s - np.trace(s) / 4 * np.eye(4))
  return np.stack(out)


def _raw_trial_fn(k: int, t, lo: float, hi: float, a: float, k2_max: int,
                  core=None) -> Callable:
  centres, frames, _ = res.chart_arrays()
  orbits = np.asarray([c.orbit for c in res.charts()])
  n_orb = int(orbits.max()) + 1
  member = (orbits[None, :] == np.arange(n_orb)[:, None]).astype(float)  # [12, 48]
  maps = _chart_maps(k)
  hess = potential_hessian(t, lo, hi, a, k2_max)
  chi = lambda v: res.smooth_step((hi - v) / (hi - lo))
  basis = _asd_basis()
  dy = np.eye(7)[:3]

  def one_chart(x, c, p, m, q):
    dt = x.dtype
    d = jnp.mod(x - c + jnp.pi, res.TWO_PI) - jnp.pi
    w = p.T @ d
    u = w[3:]
    h = hess(u)
    if q is not None:  # − Hess(χ(v) ½ uᵀ S u): χ(v) q(u) with S = Σ q_i basis_i
      s_mat = jnp.einsum("i,iab->ab", q, jnp.asarray(basis, dt))
      h = h - jax.hessian(lambda z: chi(jnp.sum(z * z)) * 0.5 * z @ s_mat @ z)(u)
    two = eh._two_form_7d(form_of_hessian(h))  # pylint: disable=protected-access
    if k == 2:
      return two[None] @ m  # [1, 21]
    three = jnp.stack([forms.wedge(jnp.asarray(dy[i], dt), 1, two, 2) for i in range(3)])
    return three @ m  # [3, 35]

  def fn(x):
    dt = x.dtype
    qs = None if core is None else jnp.asarray(core, dt)
    per = jax.vmap(lambda c, p, m, q: one_chart(x, c, p, m, q),
                   in_axes=(0, 0, 0, None if qs is None else 0))(
        jnp.asarray(centres, dt), jnp.asarray(frames, dt), jnp.asarray(maps, dt), qs)
    tot = jnp.einsum("oj,jnc->onc", jnp.asarray(member, dt), per)  # [12, n, C]
    return tot.reshape(-1, tot.shape[-1])
  return fn


def core_asd(t, lo: float, hi: float, a: float = DEFAULT_A, k2_max: int = DEFAULT_K2,
             core=None) -> np.ndarray:
  """[48, 3]: per chart, the ASD components (in `_asd_basis`, chart frame) of the smooth remainder of
  its orbit's tail 2-form at the chart's torus (u = 0): the sum minus the chart's own Eguchi–Hanson
  form, evaluated at |u| = 1e-3, 2e-3 and extrapolated (even in u: Richardson in |u|²). `core`: of
  the forms with that [48, 3] subtracted (≈ 0 when it is this function's own output)."""
  centres, frames, _ = res.chart_arrays()
  orbits = np.asarray([c.orbit for c in res.charts()])
  maps = _chart_maps(2)
  fn = jax.jit(jax.vmap(_raw_trial_fn(2, t, lo, hi, a, k2_max, core)))
  eh_form = jax.vmap(eh.kahler_form(eh.asd_potential(float(t))))
  basis_forms = np.stack([np.asarray(form_of_hessian(jnp.asarray(s))) for s in _asd_basis()])
  direction = np.asarray([0.3, -0.5, 0.7, 0.4]) / np.linalg.norm([0.3, -0.5, 0.7, 0.4])
  vals = []
  for r in (1e-3, 2e-3):
    u = np.broadcast_to(r * direction, (len(centres), 4))
    w = np.concatenate([np.zeros((len(centres), 3)), u], 1)
    x = np.mod(centres + np.einsum("jab,jb->ja", frames, w), res.TWO_PI)
    total = np.asarray(fn(jnp.asarray(x)))[np.arange(len(centres)), orbits]  # [48, 21] x comps
    chart = np.linalg.solve(np.transpose(maps, (0, 2, 1)), total[..., None])[..., 0]
    mats = np.asarray(jax.vmap(lambda c: forms.to_tensor(c, 2))(jnp.asarray(chart)))[:, 3:, 3:]
    mats = mats - np.asarray(eh_form(jnp.asarray(u)))
    vals.append(np.einsum("jab,iab->ji", mats, basis_forms)
                / np.einsum("iab,iab->i", basis_forms, basis_forms))
  return (4 * vals[0] - vals[1]) / 3


def tail_trial_fn(k: int, t: float, lo: float, hi: float, subtract_core: bool = False,
                  a: float = DEFAULT_A, k2_max: int = DEFAULT_K2) -> tuple[Callable, int]:
  """(x [7] -> [n, C(7,k)], n): the 12 tail 2-forms (k = 2) or 36 tail 3-forms (k = 3, orbit-major,
  dy¹, dy², dy³ per orbit), module doc; lo, hi = r_cut_inner², r_cut²."""
  core = core_asd(t, lo, hi, a, k2_max) if subtract_core else None
  fn = _raw_trial_fn(k, t, lo, hi, a, k2_max, core)
  return fn, (12 if k == 2 else 36)
