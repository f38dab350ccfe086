"""Trajectory geometry of AIether: stretch factor, curvature, spectral extrapolation.

All functions take a history `[S, ...]` of S snapshots of one tensor, oldest first, with
velocities V_t = W_t - W_{t-1} (t = 1..S-1) and net displacement Delta = W_{S-1} - W_0.
Every tensor is flattened to `[S, D]`, so matrices use the Frobenius norm and 1-D tensors
(biases, norm scales) the Euclidean norm: tau and kappa are identical to the original's
`[S, 1, d]` reshape. By default 1-D tensors also get the spectral projection and the escape
vector (the report's "uniform" treatment, §3.7); `one_d="legacy"` reproduces the original code,
where 1-D tensors get W_last + beta*v_mean + gamma*a_mean with no projection and no escape.

Singular vectors have arbitrary signs; the escape vector sums several of them, so each secondary
mode is first oriented along the net drift Delta (`align_with_drift`): the new block does not
depend on the sign convention of the eigensolver (the original's Σσ_i q_i did).

The SVD of the (S-1) x D velocity matrix uses the Gram trick: eigh of the (S-1) x (S-1) matrix
V V^T gives sigma_i^2 and u_i, and q_i = V^T u_i / sigma_i are the right singular vectors. It is
exact; modes with sigma_i below 10*sqrt(machine eps)*sigma_0 (where the squared Gram spectrum
has lost all precision) are dropped.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

PyTree = Any

ETA_MODES = ("report", "legacy_code")
DIRECTIONS = ("normalized", "legacy_raw")
ONE_D_MODES = ("uniform", "legacy")


@dataclasses.dataclass(frozen=True)
class ExtrapolationConfig:
  """Coefficients and switches of W_new = W_last + beta*V_U + gamma*A_U + eta*v_escape.

  Defaults are the documented (README / report) formulas; the `legacy_*` values and
  `svd_center=True` reproduce the original code.
  """
  beta0: float = 0.1          # linear gain; beta = beta0 / (tau + eps)
  gamma0: float = 0.15        # acceleration gain; gamma = gamma0 / (1 + kappa)
  eta0: float = 0.03          # escape gain
  k_subspace: int = 10        # productive directions kept (top right singular vectors)
  ell_orth: int = 5           # secondary modes summed into the escape vector
  tau_crit: float = 2.0       # stagnation threshold of tau (also used by eta in "report" mode)
  kappa_crit: float = 0.5     # stagnation threshold of kappa
  eta_mode: str = "report"    # "report": eta0*max(0,tau-tau_c)*max(0,kappa-kappa_c); "legacy_code": eta0*tau*kappa
  direction: str = "normalized"  # "normalized": unit-norm V_U, A_U (report); "legacy_raw": raw (code)
  svd_center: bool = False    # True (legacy): SVD of mean-centred velocities, can drop the trend
  one_d: str = "uniform"      # "uniform" or "legacy" (see module docstring)
  eps: float = 1e-8

  def __post_init__(self):
    for name, allowed in (("eta_mode", ETA_MODES), ("direction", DIRECTIONS),
                          ("one_d", ONE_D_MODES)):
      if getattr(self, name) not in allowed:
        raise ValueError(f"config.{name}={getattr(self, name)!r} is invalid: allowed {allowed}")
    for name in ("beta0", "gamma0", "eta0", "tau_crit", "kappa_crit"):
      if not getattr(self, name) >= 0:
        raise ValueError(f"config.{name}={getattr(self, name)!r} is invalid: allowed >= 0")
    if int(self.k_subspace) < 1:
      raise ValueError(f"config.k_subspace={self.k_subspace!r} is invalid: allowed an int >= 1")
    if int(self.ell_orth) < 0:
      raise ValueError(f"config.ell_orth={self.ell_orth!r} is invalid: allowed an int >= 0")

  def check_history_size(self, size: int) -> None:
    """S snapshots give S-1 velocities: the subspace must leave room for an escape mode."""
    if not 1 <= self.k_subspace <= size - 2:
      raise ValueError(
          f"config.k_subspace={self.k_subspace!r} is invalid: allowed 1 <= k_subspace <= "
          f"history_size - 2 = {size - 2} (history_size={size} snapshots give {size - 1} "
          "velocities, and the escape vector needs modes beyond the subspace)")


def _flat(history: jax.Array) -> jax.Array:
  history = jnp.asarray(history)
  return history.reshape(history.shape[0], -1)


def velocities(history: jax.Array) -> jax.Array:
  """V: [S-1, D], V_t = W_t - W_{t-1}."""
  h = _flat(history)
  return h[1:] - h[:-1]


@functools.partial(jax.jit, static_argnums=1)
def temporal_stretch_factor(history: jax.Array, eps: float = 1e-8) -> jax.Array:
  """tau = sum_t ||V_t|| / (||Delta|| + eps); 1 when S < 2."""
  h = _flat(history)
  if h.shape[0] < 2:
    return jnp.ones((), h.dtype)
  path = jnp.linalg.norm(h[1:] - h[:-1], axis=1).sum()
  return path / (jnp.linalg.norm(h[-1] - h[0]) + eps)


@functools.partial(jax.jit, static_argnums=1)
def effective_curvature(history: jax.Array, eps: float = 1e-8) -> jax.Array:
  """kappa = sum ||V_perp|| / (sum |<V, u>| + eps) with u = Delta/||Delta||; 0 if S < 3 or Delta ~ 0.

  The parallel part is summed in absolute value, so pure back-and-forth motion has kappa = 0.
  """
  h = _flat(history)
  if h.shape[0] < 3:
    return jnp.zeros((), h.dtype)
  v = h[1:] - h[:-1]
  delta = h[-1] - h[0]
  dnorm = jnp.linalg.norm(delta)
  u = delta / jnp.maximum(dnorm, eps)
  par = v @ u
  perp = jnp.linalg.norm(v - par[:, None] * u[None, :], axis=1)
  kappa = perp.sum() / (jnp.abs(par).sum() + eps)
  return jnp.where(dnorm < eps, 0.0, kappa).astype(h.dtype)


def trajectory_spectrum(v: jax.Array, center: bool = False) -> tuple[jax.Array, jax.Array]:
  """Thin SVD of v [T, D] by the Gram trick. Returns (sigma [T] descending, Q [D, T]).

  Dropped (numerically null) modes have sigma = 0 and a zero column in Q.
  """
  if center:
    v = v - v.mean(axis=0, keepdims=True)
  lam, u = jnp.linalg.eigh(v @ v.T)
  lam, u = lam[::-1], u[:, ::-1]
  sigma = jnp.sqrt(jnp.maximum(lam, 0.0))
  rtol = 10.0 * float(np.sqrt(np.finfo(v.dtype).eps))
  keep = sigma > rtol * sigma[0]
  q = (v.T @ u) / jnp.where(keep, sigma, 1.0)[None, :]
  return jnp.where(keep, sigma, 0.0), jnp.where(keep[None, :], q, 0.0)


def _unit(x: jax.Array, eps: float) -> jax.Array:
  n = jnp.linalg.norm(x)
  return jnp.where(n > eps, x / jnp.maximum(n, eps), 0.0)


def align_with_drift(q: jax.Array, drift: jax.Array) -> jax.Array:
  """Flips each column q_i so that <q_i, drift> >= 0 (a tie, <q_i, drift> = 0, keeps +q_i).

  A singular vector is defined only up to sign, and eigh/SVD pick it arbitrarily, so a sum of
  several modes (the escape vector) changes with those arbitrary choices. Orienting every mode
  along the net drift Delta = W_last - W_0 (the direction the trajectory actually travelled)
  makes the result a function of the trajectory alone.
  """
  proj = drift @ q
  return q * jnp.where(proj < 0, -1.0, 1.0).astype(q.dtype)[None, :]


def escape_vector(sigma: jax.Array, q: jax.Array, k: int, ell: int, eps: float = 1e-8,
                  drift: jax.Array | None = None) -> jax.Array:
  """Unit-norm sum_{i=k}^{k+ell-1} s_i sigma_i q_i, re-orthogonalised against Q_k (0 if no modes).

  s_i = sign(<q_i, drift>) (align_with_drift), so flipping the sign of any singular vector leaves
  the escape vector unchanged. drift=None keeps the raw signs (the original's sign-dependent
  construction; only for comparison).
  """
  if drift is not None:
    q = align_with_drift(q, drift)
  qk = q[:, :k]
  esc = (q[:, k:k + ell] * sigma[k:k + ell][None, :]).sum(axis=1)
  esc = esc - qk @ (qk.T @ esc)
  return _unit(esc, eps)


def coefficients(tau, kappa, config: ExtrapolationConfig):
  """(beta, gamma, eta) from tau and kappa."""
  beta = config.beta0 / (tau + config.eps)
  gamma = config.gamma0 / (1.0 + kappa)
  if config.eta_mode == "report":
    eta = (config.eta0 * jnp.maximum(0.0, tau - config.tau_crit)
           * jnp.maximum(0.0, kappa - config.kappa_crit))
  else:
    eta = config.eta0 * tau * kappa
  return beta, gamma, eta


@functools.partial(jax.jit, static_argnums=1)
def extrapolate(history: jax.Array, config: ExtrapolationConfig) -> tuple[jax.Array, dict]:
  """W_new = W_last + beta*V_U + gamma*A_U + eta*v_escape for one tensor. history: [S, ...]."""
  history = jnp.asarray(history)
  s, shape = history.shape[0], history.shape[1:]
  last = history[-1]
  if s < 2:  # nothing to extrapolate from: copy the last frame (the original GrowthManager)
    zero = jnp.zeros((), history.dtype)
    return last, dict(tau=zero + 1, kappa=zero, beta=zero, gamma=zero, eta=zero, rank=zero,
                      step_norm=zero, delta_norm=zero)
  h = _flat(history)
  v = h[1:] - h[:-1]
  delta = h[-1] - h[0]
  v_mean = v.mean(axis=0)  # telescopes to delta / (S-1)
  a_mean = (v[-1] - v[0]) / (s - 2) if s >= 3 else jnp.zeros_like(v_mean)
  tau = temporal_stretch_factor(history, config.eps)
  kappa = effective_curvature(history, config.eps)
  if len(shape) <= 1 and config.one_d == "legacy":
    v_u, a_u, esc = v_mean, a_mean, jnp.zeros_like(v_mean)
    rank = jnp.zeros((), h.dtype)
  else:
    sigma, q = trajectory_spectrum(v, center=config.svd_center)
    k = min(int(config.k_subspace), v.shape[0])
    qk = q[:, :k]
    v_u = qk @ (qk.T @ v_mean)
    a_u = qk @ (qk.T @ a_mean)
    esc = escape_vector(sigma, q, k, int(config.ell_orth), config.eps, drift=delta)
    rank = (sigma > 0).sum().astype(h.dtype)
  if config.direction == "normalized":
    v_u, a_u = _unit(v_u, config.eps), _unit(a_u, config.eps)
  beta, gamma, eta = coefficients(tau, kappa, config)
  step = beta * v_u + gamma * a_u + eta * esc
  new = last + step.reshape(shape).astype(last.dtype)
  return new, dict(tau=tau, kappa=kappa, beta=beta, gamma=gamma, eta=eta, rank=rank,
                   step_norm=jnp.linalg.norm(step), delta_norm=jnp.linalg.norm(delta))


# ---- pytree versions (a block of parameters; every leaf has a leading snapshot axis) ----

@functools.partial(jax.jit, static_argnums=1)
def _tree_tau_kappa(history_tree: PyTree, eps: float) -> tuple[jax.Array, jax.Array]:
  leaves = jax.tree.leaves(history_tree)
  taus = jnp.stack([temporal_stretch_factor(x, eps) for x in leaves])
  kappas = jnp.stack([effective_curvature(x, eps) for x in leaves])
  return taus.mean(), kappas.mean()


def tree_stretch_and_curvature(history_tree: PyTree, eps: float = 1e-8) -> tuple[float, float]:
  """Mean tau and mean kappa over all leaves of a block (as the original's stagnation check)."""
  tau, kappa = _tree_tau_kappa(history_tree, eps)
  return float(tau), float(kappa)


@functools.partial(jax.jit, static_argnums=1)
def _extrapolate_tree(history_tree: PyTree, config: ExtrapolationConfig):
  leaves, treedef = jax.tree.flatten(history_tree)
  outs = [extrapolate(x, config) for x in leaves]
  new = jax.tree.unflatten(treedef, [o[0] for o in outs])
  ms = [o[1] for o in outs]
  metrics = {k: jnp.mean(jnp.stack([m[k] for m in ms])) for k in ms[0]}
  metrics["step_norm"] = jnp.sqrt(sum(m["step_norm"] ** 2 for m in ms))
  return new, metrics


def extrapolate_tree(history_tree: PyTree, config: ExtrapolationConfig) -> tuple[PyTree, dict]:
  """Extrapolates every leaf; metrics are means over leaves (step_norm: root of summed squares)."""
  new, metrics = _extrapolate_tree(history_tree, config)
  return new, {k: float(v) for k, v in metrics.items()}


# ---- snapshot history, optax-style init/update ----

class HistoryState(NamedTuple):
  snapshots: PyTree   # leaves [S, ...] float32, newest last
  count: jax.Array    # int32, number of valid snapshots (<= S)


class SnapshotHistory(NamedTuple):
  init: Any
  update: Any


def snapshot_history(size: int) -> SnapshotHistory:
  """A rolling window of the last `size` snapshots of a parameter block.

  init(params) -> HistoryState (empty); update(params, state) -> state with params appended
  (oldest dropped once full). Both are pure and jittable.
  """
  if int(size) < 2:
    raise ValueError(f"history_size={size!r} is invalid: allowed an int >= 2")

  def init(params):
    snaps = jax.tree.map(lambda p: jnp.zeros((size,) + p.shape, jnp.float32), params)
    return HistoryState(snaps, jnp.zeros((), jnp.int32))

  def update(params, state):
    snaps = jax.tree.map(
        lambda h, p: jnp.concatenate([h[1:], p[None].astype(jnp.float32)], axis=0),
        state.snapshots, params)
    return HistoryState(snaps, jnp.minimum(state.count + 1, size))

  return SnapshotHistory(init, update)


def history_view(state: HistoryState) -> PyTree:
  """The valid snapshots, oldest first: leaves [count, ...] (host-side: count is concrete)."""
  n = int(state.count)
  return jax.tree.map(lambda h: h[h.shape[0] - n:], state.snapshots)
