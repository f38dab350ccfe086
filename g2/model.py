"""Flax Linen networks of the g2 learner: periodic form networks on T^7 and 1-D profile MLPs.

Periodicity is by construction: the input is x in R^7 and the features are sin(k.x), cos(k.x) for
integer frequency vectors k, so every output is a function on T^7 = (R/2piZ)^7 (the original used
random real frequencies B ~ N(0,1) and 2pi x B, which are not periodic on [0, 2pi]^7).
"""
from __future__ import annotations

import dataclasses
import functools
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np


@functools.lru_cache(maxsize=None)
def integer_frequencies(max_l1: int) -> np.ndarray:
  """Integer vectors k in Z^7 with 1 <= |k|_1 <= max_l1, one of each +-k pair.

  Returns: [n_freq, 7] int array (lexicographically first sign representative kept).
  """
  if max_l1 < 1:
    raise ValueError(f"max_frequency={max_l1!r} is invalid: allowed an integer >= 1")
  out = []

  # Depth-first over the coordinates with the remaining |k|_1 budget: the same lexicographic
  # order as itertools.product(range(-max_l1, max_l1 + 1), repeat=7) filtered, without visiting
  # its (2 max_l1 + 1)^7 tuples (4.8M for max_l1 = 4).
  def extend(prefix: tuple, budget: int):
    if len(prefix) == 7:
      if budget < max_l1 and next(v for v in prefix if v != 0) > 0:
        out.append(prefix)
      return
    for v in range(-min(max_l1, budget), min(max_l1, budget) + 1):
      extend(prefix + (v,), budget - abs(v))

  extend((), max_l1)
  arr = np.asarray(out, dtype=np.int32)
  arr.setflags(write=False)  # cached: shared by every caller
  return arr


@dataclasses.dataclass(frozen=True)
class PeriodicNetConfig:
  """Narrow config of a periodic multi-output network on T^7."""
  max_frequency: int  # |k|_1 bound of the integer Fourier features
  width: int  # hidden width
  depth: int  # hidden layers
  out_dim: int  # outputs per point (components x heads)
  zero_init_output: bool = True  # start at the zero function (phi = phi_bar at step 0)


class PeriodicFeatures(nn.Module):
  """x [..., 7] -> [..., 2 n_freq] features sin(k.x), cos(k.x) with integer k (periodic)."""
  max_frequency: int

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    k = jnp.asarray(integer_frequencies(self.max_frequency), x.dtype)
    phase = x @ k.T
    return jnp.concatenate([jnp.sin(phase), jnp.cos(phase)], axis=-1)


class PeriodicFormNet(nn.Module):
  """Periodic MLP with a linear spectral skip: out = W_lin f(x) + MLP(f(x)) + b.

  The linear skip spans exactly the trigonometric polynomials of the feature frequencies (a
  spectral method); the MLP adds nonlinear corrections (higher harmonics). Output dimension is
  `out_dim` (e.g. 21 components of a 2-form, or heads x components for the harmonic network).
  """
  config: PeriodicNetConfig

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    cfg = self.config
    f = PeriodicFeatures(cfg.max_frequency)(x)
    out_init = nn.initializers.zeros if cfg.zero_init_output else nn.initializers.lecun_normal()
    h = f
    for i in range(cfg.depth):
      h = nn.silu(nn.Dense(cfg.width, name=f"hidden_{i}")(h))
    mlp = nn.Dense(cfg.out_dim, kernel_init=out_init, name="mlp_out")(h)
    skip = nn.Dense(cfg.out_dim, use_bias=False, kernel_init=out_init, name="spectral_skip")(f)
    return mlp + skip


class MultiHeadFormNet(nn.Module):
  """One shared periodic trunk with many heads: 2-form heads [n_h2, 21], 3-form heads [n_h3, 35].

  One network for all requested forms (the original looped over 98 separate MLPs). Heads start
  at random (not zero) so that their Gram matrix is non-degenerate from the first step; the
  constant part of each head is its own bias, so constant (harmonic on flat T^7) forms are
  reachable exactly.
  """
  max_frequency: int
  width: int
  depth: int
  n_h2: int
  n_h3: int

  @nn.compact
  def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    f = PeriodicFeatures(self.max_frequency)(x)
    h = f
    for i in range(self.depth):
      h = nn.silu(nn.Dense(self.width, name=f"hidden_{i}")(h))
    out_dim = self.n_h2 * 21 + self.n_h3 * 35
    # Constant parts ~ N(0, 1/35): flat-metric Gram diagonal ~ 1 at initialisation.
    bias_init = nn.initializers.normal(35 ** -0.5)
    out = nn.Dense(out_dim, bias_init=bias_init, name="heads")(h)
    out = out + nn.Dense(out_dim, use_bias=False, kernel_init=nn.initializers.normal(0.02),
                         name="spectral_skip")(f)
    h2 = out[..., :self.n_h2 * 21].reshape(*x.shape[:-1], self.n_h2, 21)
    h3 = out[..., self.n_h2 * 21:].reshape(*x.shape[:-1], self.n_h3, 35)
    return h2, h3


class ProfileNet(nn.Module):
  """1-D MLP r -> n_out unconstrained outputs (profile corrections of cohomogeneity-one ansatze)."""
  width: int
  depth: int
  n_out: int = 2
  r_scale: float = 1.0
  param_dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, r: jax.Array) -> jax.Array:
    h = (jnp.asarray(r) / self.r_scale)[..., None]
    for i in range(self.depth):
      h = jnp.tanh(nn.Dense(self.width, param_dtype=self.param_dtype, name=f"hidden_{i}")(h))
    return nn.Dense(self.n_out, param_dtype=self.param_dtype, name="out")(h)


def chebyshev_basis(t: jax.Array, n: int) -> jax.Array:
  """T_0(t) .. T_{n-1}(t) by the three-term recurrence (smooth at t = +-1, unlike cos(n acos t)).

  Args: t: [...]. Returns: [..., n].
  """
  def step(carry, _):
    prev, cur = carry
    return (cur, 2 * t * cur - prev), prev

  _, basis = jax.lax.scan(step, (jnp.ones_like(t), t), None, length=n)
  return jnp.moveaxis(basis, 0, -1)


def chebyshev_integral_matrix(degree: int) -> np.ndarray:
  """Q [degree + 1, degree]: int_{-1}^t sum_n c_n T_n(s) ds = sum_m (Q c)_m T_m(t)."""
  eye = np.eye(degree)
  return np.stack([np.polynomial.chebyshev.chebint(eye[n], lbnd=-1) for n in range(degree)], 1)


class ChebyshevIntegralProfile(nn.Module):
  """u(r) = int_{r_min}^r p(s) ds with p a Chebyshev series of `degree` terms on [r_min, r_max].

  Returns [..., n_out], zero at r = r_min for any coefficients (boundary data imposed exactly
  when a profile is B0 exp(u)). Parameterising the derivative p rather than u keeps the torsion
  (first order in the profiles) well conditioned in the coefficients: a term T_n enters u' with
  weight O(1) instead of O(n^2). Coefficients start at zero (constant profiles).
  """
  degree: int
  r_min: float
  r_max: float
  n_out: int = 2
  param_dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, r: jax.Array) -> jax.Array:
    coefs = self.param("coefs", nn.initializers.zeros, (self.degree, self.n_out), self.param_dtype)
    half = 0.5 * (self.r_max - self.r_min)
    t = (jnp.asarray(r) - self.r_min) / half - 1.0
    q = jnp.asarray(chebyshev_integral_matrix(self.degree), coefs.dtype)
    return half * chebyshev_basis(t, self.degree + 1) @ (q @ coefs)


def count_params(params) -> int:
  return int(sum(np.prod(p.shape) for p in jax.tree.leaves(params)))
