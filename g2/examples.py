"""Exact G2 structures (reference g2.md §3.4–3.6): torsion-free ones and known-torsion negatives.

Each constructor returns an `Example`: φ as a function of one point (x [7] -> [35]
components in the coordinates named in `coordinates`), the closed-form metric g_φ, a sampler
of points inside the chart (away from coordinate singularities), and the exact torsion data.

Torsion-free (dφ = dψ = 0, Ric = 0, ∇φ = 0):
  flat φ0 (scaled); Gibbons–Hawking R³ × (multi-)Taub-NUT (Hol = SU(2)); Bryant–Salamon on
  R⁴ × S³ (Hol = G2, the spinor bundle of S³).
Known non-zero torsion:
  rotating frame φ = R(k x4)^*φ0 on flat R⁷ (g = δ, Riem = 0, |dφ|² = 2k², |∇φ| = 2k);
  conformal φ = e^{3f} φ0 (|dφ|² = 36 e^{−2f}|df|², |dψ|² = 48 e^{−2f}|df|², τ1 = df,
  |∇φ|² = 24 e^{−2f}|df|²); Gibbons–Hawking with the non-harmonic V = 1 + r² (dφ ≠ 0, Ric ≠ 0).
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

import jax
import jax.numpy as jnp

from g2 import forms
from g2 import g2form

Field = Callable[[jax.Array], jax.Array]


@dataclasses.dataclass(frozen=True)
class Example:
  """An explicit G2 structure on a coordinate chart of R⁷.

  Attributes:
    name: short identifier.
    coordinates: names of x[0..6].
    phi_fn: x [7] -> φ components [35].
    metric_fn: x [7] -> closed-form g_φ [7, 7].
    sample: (key, n) -> points [n, 7] inside the chart.
    torsion_free: whether dφ = dψ = 0 exactly.
    expected: name -> (x [7] -> exact value) of known quantities ('dphi_sq', 'dpsi_sq',
      'tau1_sq', 'nabla_phi_sq'); zero for the torsion-free examples.
  """
  name: str
  coordinates: tuple[str, ...]
  phi_fn: Field
  metric_fn: Field
  sample: Callable[[jax.Array, int], jax.Array]
  torsion_free: bool
  expected: dict


def _unit(i: int, dtype) -> jax.Array:
  return jnp.zeros(7, dtype).at[i].set(1.0)


def _w(*factors_and_degrees):
  """Wedge of (form, degree) pairs, left to right."""
  out, deg = factors_and_degrees[0]
  for f, d in factors_and_degrees[1:]:
    out, deg = forms.wedge(out, deg, f, d), deg + d
  return out


def _zero_torsion(x):
  return jnp.zeros((), x.dtype)


_ZERO = {k: _zero_torsion for k in ("dphi_sq", "dpsi_sq", "tau1_sq", "nabla_phi_sq")}
_CARTESIAN = ("x1", "x2", "x3", "x4", "x5", "x6", "x7")


def _box_sampler(lo: float, hi: float):
  return lambda key, n: jax.random.uniform(key, (n, 7), minval=lo, maxval=hi)


def flat(scale: float = 1.0) -> Example:
  """Constant φ = scale·φ0 on R⁷: g = scale^(2/3) δ, torsion-free and flat."""
  return Example(
      name="flat", coordinates=_CARTESIAN,
      phi_fn=lambda x: scale * g2form.phi0(x.dtype),
      metric_fn=lambda x: scale ** (2 / 3) * jnp.eye(7, dtype=x.dtype),
      sample=_box_sampler(-1.0, 1.0), torsion_free=True, expected=dict(_ZERO))


def _gh_phi_and_metric(x: jax.Array, potential: Field, connection: Field):
  """φ = dy¹²³ + Σ dy_i∧ω_i, ω_i = η∧dx_i − (V/2) ε_ijk dx_j∧dx_k, η = dτ + A (coords y, x, τ)."""
  dtype = x.dtype
  v = potential(x[3:6])
  eta = _unit(6, dtype) + jnp.zeros(7, dtype).at[3:6].set(connection(x[3:6]))
  dy = [_unit(i, dtype) for i in range(3)]
  dx = [_unit(3 + i, dtype) for i in range(3)]
  phi = _w((dy[0], 1), (dy[1], 1), (dy[2], 1))
  for i in range(3):
    j, k = (i + 1) % 3, (i + 2) % 3
    omega = forms.wedge(eta, 1, dx[i], 1) - v * forms.wedge(dx[j], 1, dx[k], 1)
    phi = phi + forms.wedge(dy[i], 1, omega, 2)
  metric = jnp.diag(jnp.array([1, 1, 1, 0, 0, 0, 0], dtype) + v * jnp.array(
      [0, 0, 0, 1, 1, 1, 0], dtype)) + jnp.outer(eta, eta) / v
  return phi, metric


def _monopole(centres: jax.Array, weight: float):
  """V = 1 + Σ_a weight/|x − p_a| and A = Σ_a weight (x2 dx1 − x1 dx2)/(r (r + x3)) (shifted)."""
  def potential(x):
    r = jnp.linalg.norm(x[None, :] - centres, axis=-1)
    return 1.0 + weight * jnp.sum(1.0 / r)

  def connection(x):
    d = x[None, :] - centres
    r = jnp.linalg.norm(d, axis=-1)
    c = weight / (r * (r + d[:, 2]))
    return jnp.stack([jnp.sum(c * d[:, 1]), -jnp.sum(c * d[:, 0]), jnp.zeros((), x.dtype)])
  return potential, connection


def _gh_sampler(centres: jax.Array, r_min: float, r_max: float):
  """Points with y ∈ [−1, 1]³, τ ∈ [0, 2π), x at distance [r_min, r_max] above the first centre.

  x3 − p3 ≥ 0.3 r keeps every point away from the Dirac strings r + (x3 − p3) = 0.
  """
  def sample(key, n):
    ky, kd, kr, kt = jax.random.split(key, 4)
    y = jax.random.uniform(ky, (n, 3), minval=-1.0, maxval=1.0)
    d = jax.random.normal(kd, (n, 3))
    d = d / jnp.linalg.norm(d, axis=-1, keepdims=True)
    d = d.at[:, 2].set(0.3 + 0.7 * jnp.abs(d[:, 2]))
    d = d / jnp.linalg.norm(d, axis=-1, keepdims=True)
    r = jax.random.uniform(kr, (n, 1), minval=r_min, maxval=r_max)
    tau = jax.random.uniform(kt, (n, 1), minval=0.0, maxval=2 * jnp.pi)
    return jnp.concatenate([y, centres[0] + r * d, tau], axis=-1)
  return sample


def gibbons_hawking(centres: Sequence[Sequence[float]] = ((0.0, 0.0, 0.0),),
                    weight: float = 0.5) -> Example:
  """R³ × multi-Taub-NUT: V = 1 + Σ weight/|x − p_a| (harmonic), dA = ⋆₃dV; torsion-free.

  Coordinates (y1, y2, y3, x1, x2, x3, τ); g = Σdy² + V Σdx² + V^{-1}(dτ + A)².
  """
  c = jnp.asarray(centres, dtype=float).reshape(-1, 3)
  potential, connection = _monopole(c, weight)
  r_max = 1.5 if len(c) == 1 else 0.8 * float(jnp.min(jnp.linalg.norm(
      c[1:] - c[0], axis=-1)))
  return Example(
      name="gibbons_hawking" if len(c) == 1 else f"gibbons_hawking_{len(c)}",
      coordinates=("y1", "y2", "y3", "x1", "x2", "x3", "tau"),
      phi_fn=lambda x: _gh_phi_and_metric(x, potential, connection)[0],
      metric_fn=lambda x: _gh_phi_and_metric(x, potential, connection)[1],
      sample=_gh_sampler(c, 0.4 * min(r_max, 1.0), r_max), torsion_free=True,
      expected=dict(_ZERO))


def gibbons_hawking_nonharmonic() -> Example:
  """Negative example: V = 1 + r² (not harmonic) with the monopole A: dφ ≠ 0 and Ric ≠ 0."""
  c = jnp.zeros((1, 3))
  _, connection = _monopole(c, 0.5)

  def potential(x):
    return 1.0 + jnp.sum(x**2)
  return Example(
      name="gibbons_hawking_nonharmonic",
      coordinates=("y1", "y2", "y3", "x1", "x2", "x3", "tau"),
      phi_fn=lambda x: _gh_phi_and_metric(x, potential, connection)[0],
      metric_fn=lambda x: _gh_phi_and_metric(x, potential, connection)[1],
      sample=_gh_sampler(c, 0.5, 1.5), torsion_free=False, expected={})


def _left_invariant(theta, phi_angle, psi, dtype, offset: int):
  """σ1, σ2, σ3 on SU(2) with Euler angles at coordinates offset, offset+1, offset+2."""
  def one(i, values):
    return jnp.zeros(7, dtype).at[offset:offset + 3].set(jnp.stack(values))
  zero = jnp.zeros((), dtype)
  s1 = one(0, [jnp.cos(psi), jnp.sin(psi) * jnp.sin(theta), zero])
  s2 = one(1, [-jnp.sin(psi), jnp.cos(psi) * jnp.sin(theta), zero])
  s3 = one(2, [zero, jnp.cos(theta), jnp.ones((), dtype)])
  return s1, s2, s3


def _bs_coframe(x: jax.Array, a: float) -> jax.Array:
  """Rows e0, e1, e2, e3, ê1, ê2, ê3 of the Bryant–Salamon coframe [7, 7]."""
  dtype = x.dtype
  r = x[0]
  f = 1.0 - a**3 / r**3
  sig = _left_invariant(x[1], x[2], x[3], dtype, 1)
  big = _left_invariant(x[4], x[5], x[6], dtype, 4)
  e0 = _unit(0, dtype) / jnp.sqrt(f)
  e = [(r / 3) * jnp.sqrt(f) * (big[i] - 0.5 * sig[i]) for i in range(3)]
  eh = [(r / (2 * jnp.sqrt(3.0))) * sig[i] for i in range(3)]
  return jnp.stack([e0] + e + eh)


def _bs_phi(x: jax.Array, a: float) -> jax.Array:
  """φ = e0∧(e1∧ê1 + e2∧ê2 + e3∧ê3) + ê1∧ê2∧ê3 − ê1∧e2∧e3 − ê2∧e3∧e1 − ê3∧e1∧e2."""
  c = _bs_coframe(x, a)
  e0, e, eh = c[0], c[1:4], c[4:7]
  omega = sum(forms.wedge(e[i], 1, eh[i], 1) for i in range(3))
  phi = forms.wedge(e0, 1, omega, 2) + _w((eh[0], 1), (eh[1], 1), (eh[2], 1))
  for i in range(3):
    j, k = (i + 1) % 3, (i + 2) % 3
    phi = phi - _w((eh[i], 1), (e[j], 1), (e[k], 1))
  return phi


def bryant_salamon(a: float = 1.0, r_range: tuple[float, float] = (1.3, 3.5)) -> Example:
  """Bryant–Salamon complete G2 metric on R⁴ × S³ (Hol = G2), F = 1 − a³/r³.

  Coordinates (r, θ1, φ1, ψ1, θ2, φ2, ψ2); g = dr²/F + (r²/9) F Σ(Σ_i − σ_i/2)² + (r²/12) Σσ_i².
  """
  if not a > 0 or not a < r_range[0] < r_range[1]:
    raise ValueError(f"(a, r_range)={(a, r_range)!r} is invalid: allowed 0 < a < r_min < r_max")

  def sample(key, n):
    kr, kt, ka = jax.random.split(key, 3)
    r = jax.random.uniform(kr, (n, 1), minval=r_range[0] * a, maxval=r_range[1] * a)
    theta = jax.random.uniform(kt, (n, 2), minval=0.3, maxval=jnp.pi - 0.3)
    ang = jax.random.uniform(ka, (n, 4), minval=0.0, maxval=2 * jnp.pi)
    return jnp.concatenate([r, theta[:, :1], ang[:, :2], theta[:, 1:], ang[:, 2:]], axis=-1)

  def metric_fn(x):
    c = _bs_coframe(x, a)
    return c.T @ c
  return Example(
      name="bryant_salamon", coordinates=("r", "theta1", "phi1", "psi1", "theta2", "phi2", "psi2"),
      phi_fn=lambda x: _bs_phi(x, a), metric_fn=metric_fn, sample=sample, torsion_free=True,
      expected=dict(_ZERO))


def rotating_frame(k: float = 1.0) -> Example:
  """φ(x) = R(k x4)^*φ0, R the rotation by k·x4 in the (e1, e2) plane: flat metric, |dφ|² = 2k²."""
  def phi_fn(x):
    c, s = jnp.cos(k * x[3]), jnp.sin(k * x[3])
    rot = jnp.eye(7, dtype=x.dtype).at[0, 0].set(c).at[0, 1].set(-s).at[1, 0].set(s)
    rot = rot.at[1, 1].set(c)
    return g2form.pullback(g2form.phi0(x.dtype), rot)

  def const(value):
    return lambda x: jnp.asarray(value, x.dtype)
  return Example(
      name="rotating_frame", coordinates=_CARTESIAN, phi_fn=phi_fn,
      metric_fn=lambda x: jnp.eye(7, dtype=x.dtype), sample=_box_sampler(-2.0, 2.0),
      torsion_free=False,
      expected=dict(dphi_sq=const(2 * k**2), nabla_phi_sq=const(4 * k**2)))


def default_conformal_factor(x: jax.Array) -> jax.Array:
  """f(x) = 0.3 sin x1 + 0.2 x2 x3 − 0.1 x7² (a generic smooth function)."""
  return 0.3 * jnp.sin(x[0]) + 0.2 * x[1] * x[2] - 0.1 * x[6] ** 2


def conformal(f: Field = default_conformal_factor) -> Example:
  """φ = e^{3f} φ0, g = e^{2f} δ, ψ = e^{4f} ψ0: dφ = 3 df∧φ, dψ = 4 df∧ψ, τ1 = df, τ0 = 0."""
  def df_sq(x):  # e^{-2f} |df|²_δ = |df|²_g
    df = jax.grad(f)(x)
    return jnp.exp(-2 * f(x)) * jnp.dot(df, df)
  return Example(
      name="conformal", coordinates=_CARTESIAN,
      phi_fn=lambda x: jnp.exp(3 * f(x)) * g2form.phi0(x.dtype),
      metric_fn=lambda x: jnp.exp(2 * f(x)) * jnp.eye(7, dtype=x.dtype),
      sample=_box_sampler(-1.0, 1.0), torsion_free=False,
      expected=dict(dphi_sq=lambda x: 36 * df_sq(x), dpsi_sq=lambda x: 48 * df_sq(x),
                    tau1_sq=df_sq, nabla_phi_sq=lambda x: 24 * df_sq(x)))


def all_examples() -> list[Example]:
  """The standard set used by the tests and the README validation table."""
  return [flat(1.7), gibbons_hawking(), gibbons_hawking(((0.0, 0.0, 0.0), (0.3, -0.4, -1.5))),
          bryant_salamon(), rotating_frame(0.7), conformal()]
