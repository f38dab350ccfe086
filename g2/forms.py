"""Exterior algebra on R^7 in components, with constant index tables.

A k-form is stored as its C(7, k) independent components w_I, I = (i1 < ... < ik) in
lexicographic order (21 two-form, 35 three-form, 35 four-form components), in the last axis
of an array; leading axes are batch axes. Conventions (reference g2.md §3):

* |w|^2 = (1/k!) w_{i1..ik} w^{i1..ik} = sum over sorted I, J of w_I C_k(g^-1)_{IJ} w_J;
* (a ∧ b)_K = sum over I ∪ J = K of sign(I, J -> K) a_I b_J  (i.e. (p+q)!/(p! q!) Alt(a ⊗ b));
* (⋆w)_J = (1/k!) sqrt(det g) w^{i1..ik} ε_{i1..ik J}, orientation ε_{1..7} = +1;
* (dw)_{i0..ik} = sum_m (-1)^m ∂_{i_m} w_{i0..î_m..ik}.

Every operation is an einsum with constant ±1/0 tables built once in NumPy
(`functools.lru_cache`): nothing loops over components or permutations at trace time, and
there are no gathers (whose transposes, scatter-adds, are slow on CPU) in the hot path.
Raising indices uses the k-th compound matrix C_k(g^-1): a dense k-fold contraction for
k <= 3, and Jacobi's complementary-minor identity C_k(g^-1) = S C_{7-k}(g) S^T / det g
(S the Euclidean star, a signed permutation) for k >= 4, so a 5-form costs a 2-form's work.
"""
from __future__ import annotations

import functools
import itertools
import math
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

DIM = 7


def num_components(k: int) -> int:
  """Number of independent components C(7, k) of a k-form on R^7."""
  _check_degree(k, "k")
  return math.comb(DIM, k)


def _check_degree(k, name: str, lo: int = 0, hi: int = DIM) -> None:
  if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or not lo <= k <= hi:
    raise ValueError(f"{name}={k!r} is invalid: allowed an integer form degree in [{lo}, {hi}]")


def _check_components(w, k: int, name: str = "w") -> None:
  n = math.comb(DIM, k)
  if jnp.ndim(w) < 1 or jnp.shape(w)[-1] != n:
    raise ValueError(
        f"{name}.shape={jnp.shape(w)} is invalid: allowed [..., {n}] "
        f"(the C(7,{k}) components of a {k}-form)")


def _sort_sign(seq) -> tuple[int, tuple[int, ...]]:
  """Sign of the permutation sorting `seq` (0 if an index repeats) and the sorted tuple."""
  seq = list(seq)
  if len(set(seq)) < len(seq):
    return 0, tuple(sorted(seq))
  sign = 1
  for i in range(len(seq)):  # bubble sort; tables are built once, off the hot path
    for j in range(len(seq) - 1 - i):
      if seq[j] > seq[j + 1]:
        seq[j], seq[j + 1] = seq[j + 1], seq[j]
        sign = -sign
  return sign, tuple(seq)


@functools.lru_cache(maxsize=None)
def combinations(k: int) -> np.ndarray:
  """Sorted index tuples of the k-form components: [C(7, k), k] int array (0-based)."""
  _check_degree(k, "k")
  return np.array(list(itertools.combinations(range(DIM), k)), dtype=np.int32).reshape(
      math.comb(DIM, k), k)


@functools.lru_cache(maxsize=None)
def _position(k: int) -> dict:
  return {tuple(int(i) for i in c): n for n, c in enumerate(combinations(k))}


def component_index(indices) -> int:
  """Position of the sorted multi-index `indices` (0-based) in the component layout."""
  idx = tuple(int(i) for i in indices)
  if len(idx) > DIM or sorted(set(idx)) != list(idx) or any(not 0 <= i < DIM for i in idx):
    raise ValueError(f"indices={indices!r} is invalid: allowed strictly increasing in [0, 6]")
  return _position(len(idx))[idx]


# ----------------------------------------------------------------------------------------
# Component <-> tensor.


_HIGHEST = jax.lax.Precision.HIGHEST  # the constant tables hold exact ±1: keep f32 exact on GPU/TPU


def _const(table: np.ndarray, dtype) -> jax.Array:
  return jnp.asarray(table, dtype=dtype)


@functools.lru_cache(maxsize=None)
def _tensor_matrix(k: int) -> np.ndarray:
  """P [C(7,k), 7^k]: t_{i1..ik} = sum_c P[c, flat(i1..ik)] w_c (signs of the sorting permutation)."""
  pos = _position(k)
  mat = np.zeros((len(pos), DIM**k), dtype=np.int8)
  for flat, multi in enumerate(itertools.product(range(DIM), repeat=k)):
    s, srt = _sort_sign(multi)
    if s:
      mat[pos[srt], flat] = s
  return mat


@functools.lru_cache(maxsize=None)
def _select_matrix(k: int) -> np.ndarray:
  """Q [7^k, C(7,k)]: w_c = t_{sorted multi-index c} (reads the i1 < .. < ik entries)."""
  c = combinations(k)
  flat = (c * (DIM ** np.arange(k - 1, -1, -1))).sum(axis=1)
  mat = np.zeros((DIM**k, len(c)), dtype=np.int8)
  mat[flat, np.arange(len(c))] = 1
  return mat


def to_tensor(comps: jax.typing.ArrayLike, k: int) -> jax.Array:
  """Fully antisymmetric tensor [..., 7, ..., 7] (k axes) from components [..., C(7,k)]."""
  _check_degree(k, "k")
  comps = jnp.asarray(comps)
  _check_components(comps, k, "comps")
  t = jnp.einsum("...c,ct->...t", comps, _const(_tensor_matrix(k), comps.dtype), precision=_HIGHEST)
  return t.reshape(comps.shape[:-1] + (DIM,) * k)


def from_tensor(t: jax.typing.ArrayLike, k: int) -> jax.Array:
  """Components [..., C(7,k)] of an antisymmetric tensor [..., 7, ..., 7] (reads i<j<.. entries)."""
  _check_degree(k, "k")
  t = jnp.asarray(t)
  if t.ndim < k or t.shape[t.ndim - k:] != (DIM,) * k:
    raise ValueError(f"t.shape={t.shape} is invalid: allowed [..., {', '.join(['7'] * k)}]")
  flat = t.reshape(t.shape[:t.ndim - k] + (DIM**k,))
  return jnp.einsum("...t,tc->...c", flat, _const(_select_matrix(k), t.dtype), precision=_HIGHEST)


# ----------------------------------------------------------------------------------------
# Wedge and interior products.


@functools.lru_cache(maxsize=None)
def _wedge_tensor(p: int, q: int) -> np.ndarray:
  """W [C(7,p), C(7,q), C(7,p+q)]: (a∧b)_K = sum W[I, J, K] a_I b_J, W = sign(I, J -> K) or 0."""
  pos_p, pos_q, pos_pq = _position(p), _position(q), _position(p + q) if p + q <= DIM else {}
  w = np.zeros((len(pos_p), len(pos_q), len(pos_pq)), dtype=np.int8)
  for I, i in pos_p.items():
    for J, j in pos_q.items():
      s, srt = _sort_sign(I + J)
      if s:
        w[i, j, pos_pq[srt]] = s
  return w


def wedge(a: jax.typing.ArrayLike, p: int, b: jax.typing.ArrayLike, q: int) -> jax.Array:
  """a ∧ b for a p-form a [..., C(7,p)] and a q-form b [..., C(7,q)] -> [..., C(7,p+q)]."""
  _check_degree(p, "p")
  _check_degree(q, "q", hi=DIM - p)
  a, b = jnp.asarray(a), jnp.asarray(b)
  _check_components(a, p, "a")
  _check_components(b, q, "b")
  dtype = jnp.result_type(a, b)
  return jnp.einsum("...i,...j,ijk->...k", a, b, _const(_wedge_tensor(p, q), dtype),
                    precision=_HIGHEST)


@functools.lru_cache(maxsize=None)
def _interior_tensor(k: int) -> np.ndarray:
  """N [7, C(7,k), C(7,k-1)]: (v⌟w)_J = sum N[i, I, J] v^i w_I, N = sign of (i, J) -> I or 0."""
  pos, pos_j = _position(k), _position(k - 1)
  n = np.zeros((DIM, len(pos), len(pos_j)), dtype=np.int8)
  for J, j in pos_j.items():
    for i in range(DIM):
      s, srt = _sort_sign((i,) + J)
      if s:
        n[i, pos[srt], j] = s
  return n


def interior(v: jax.typing.ArrayLike, w: jax.typing.ArrayLike, k: int) -> jax.Array:
  """Interior product v ⌟ w, (v⌟w)_{J} = v^i w_{iJ}, for a vector v [..., 7] and k-form w."""
  _check_degree(k, "k", lo=1)
  v, w = jnp.asarray(v), jnp.asarray(w)
  _check_components(w, k, "w")
  if v.shape[-1:] != (DIM,):
    raise ValueError(f"v.shape={v.shape} is invalid: allowed [..., 7] (a vector on R^7)")
  dtype = jnp.result_type(v, w)
  return jnp.einsum("...i,...c,icj->...j", v, w, _const(_interior_tensor(k), dtype),
                    precision=_HIGHEST)


# ----------------------------------------------------------------------------------------
# Metric operations: raising indices, inner products, Hodge star.


@functools.lru_cache(maxsize=None)
def _euclidean_star_matrix(k: int) -> np.ndarray:
  """S [C(7,k), C(7,7-k)]: (⋆_δ w)_J = ε(I, J) w_I with I the complement of J."""
  pos, pos_c = _position(k), _position(DIM - k)
  mat = np.zeros((len(pos), len(pos_c)), dtype=np.int8)
  for J, j in pos_c.items():
    I = tuple(i for i in range(DIM) if i not in J)
    mat[pos[I], j] = _sort_sign(I + J)[0]
  return mat


def euclidean_star(w: jax.Array, k: int) -> jax.Array:
  """Flat-metric Hodge star of a k-form: a signed permutation of components -> (7-k)-form."""
  return jnp.einsum("...i,ij->...j", w, _const(_euclidean_star_matrix(k), w.dtype),
                    precision=_HIGHEST)


def _apply_compound(m: jax.Array, w: jax.Array, k: int) -> jax.Array:
  """C_k(m) w = components of m^{a1 i1} .. m^{ak ik} w_{i1..ik} (m [..., 7, 7], k <= 3)."""
  if k == 0:
    return w
  if k == 1:
    return jnp.einsum("...ai,...i->...a", m, w)
  t = to_tensor(w, k)
  if k == 2:
    t = jnp.einsum("...ai,...bj,...ij->...ab", m, m, t)
  else:
    t = jnp.einsum("...ai,...ijk->...ajk", m, t)
    t = jnp.einsum("...bj,...ajk->...abk", m, t)
    t = jnp.einsum("...ck,...abk->...abc", m, t)
  return from_tensor(t, k)


def spd_inverse_and_logdet(m: jax.typing.ArrayLike) -> tuple[jax.Array, jax.Array]:
  """(m^-1, log det m) of symmetric positive-definite matrices [..., n, n] by Gauss–Jordan.

  Elimination without pivoting is stable for SPD matrices; the pivots are ratios of leading
  principal minors, so a matrix that is not positive definite gets a pivot <= 0 and a NaN
  log-determinant (and NaN/inf inverse): it is flagged, never silently accepted. Pure jnp
  (n unrolled rank-1 updates), so it batches, differentiates in both modes, and avoids the
  batched LAPACK custom calls (cholesky/trsm), which deadlocked XLA:CPU's 2-thread pool here.
  """
  m = jnp.asarray(m)
  n = m.shape[-1]
  if m.ndim < 2 or m.shape[-2] != n:
    raise ValueError(f"m.shape={m.shape} is invalid: allowed [..., n, n]")
  a = m
  inv = jnp.broadcast_to(jnp.eye(n, dtype=m.dtype), m.shape)
  log_det = jnp.zeros(m.shape[:-2], m.dtype)
  rows = np.arange(n)
  for k in range(n):
    pivot = a[..., k, k]
    log_det = log_det + jnp.log(pivot)
    row_a = a[..., k, :] / pivot[..., None]
    row_inv = inv[..., k, :] / pivot[..., None]
    col = a[..., :, k]
    is_k = jnp.asarray((rows == k)[:, None])
    a = jnp.where(is_k, row_a[..., None, :], a - col[..., :, None] * row_a[..., None, :])
    inv = jnp.where(is_k, row_inv[..., None, :], inv - col[..., :, None] * row_inv[..., None, :])
  return inv, log_det


def metric_inverse_and_volume(g: jax.typing.ArrayLike) -> tuple[jax.Array, jax.Array]:
  """(g^-1, sqrt(det g)) of a positive-definite metric [..., 7, 7] (NaN if not positive definite)."""
  g = jnp.asarray(g)
  if g.shape[-2:] != (DIM, DIM):
    raise ValueError(f"g.shape={g.shape} is invalid: allowed [..., 7, 7]")
  g_inv, log_det = spd_inverse_and_logdet(g)
  return g_inv, jnp.exp(0.5 * log_det)


def raise_indices(w: jax.typing.ArrayLike, k: int, g: jax.typing.ArrayLike, *,
                  g_inv: jax.Array | None = None,
                  sqrt_det_g: jax.Array | None = None) -> jax.Array:
  """Components w^I (sorted I) of the k-form w with all indices raised by g: C_k(g^-1) w."""
  _check_degree(k, "k")
  w, g = jnp.asarray(w), jnp.asarray(g)
  _check_components(w, k)
  if g_inv is None or sqrt_det_g is None:
    g_inv, sqrt_det_g = metric_inverse_and_volume(g)
  if k <= 3:
    return _apply_compound(g_inv, w, k)
  # Jacobi: det(A^-1[I, J]) = ε(I,I^c) ε(J,J^c) det(A[J^c, I^c]) / det A.
  lowered = _apply_compound(g, euclidean_star(w, k), DIM - k)
  return euclidean_star(lowered, DIM - k) / (sqrt_det_g**2)[..., None]


def inner(a: jax.typing.ArrayLike, b: jax.typing.ArrayLike, k: int, g: jax.typing.ArrayLike,
          **metric_data) -> jax.Array:
  """<a, b>_g = (1/k!) a_{I} b^{I} for k-forms a, b [..., C(7,k)] -> [...]."""
  return jnp.sum(jnp.asarray(a) * raise_indices(b, k, g, **metric_data), axis=-1)


def norm_sq(w: jax.typing.ArrayLike, k: int, g: jax.typing.ArrayLike, **metric_data) -> jax.Array:
  """|w|^2_g = (1/k!) w_{I} w^{I} of a k-form [..., C(7,k)] -> [...]."""
  return inner(w, w, k, g, **metric_data)


def hodge_star(w: jax.typing.ArrayLike, k: int, g: jax.typing.ArrayLike, *,
               g_inv: jax.Array | None = None,
               sqrt_det_g: jax.Array | None = None) -> jax.Array:
  """⋆_g w: (⋆w)_J = (1/k!) sqrt(det g) w^{I} ε_{IJ}, a (7-k)-form [..., C(7,7-k)].

  Args:
    w: k-form components [..., C(7,k)].
    k: degree.
    g: metric [..., 7, 7] (positive definite).
    g_inv, sqrt_det_g: optional precomputed g^-1 and sqrt(det g) (both or neither).
  """
  _check_degree(k, "k")
  g = jnp.asarray(g)
  if g_inv is None or sqrt_det_g is None:
    g_inv, sqrt_det_g = metric_inverse_and_volume(g)
  raised = raise_indices(w, k, g, g_inv=g_inv, sqrt_det_g=sqrt_det_g)
  return sqrt_det_g[..., None] * euclidean_star(raised, k)


# ----------------------------------------------------------------------------------------
# Exterior derivative.


@functools.lru_cache(maxsize=None)
def _derivative_matrix(k: int) -> np.ndarray:
  """D [C(7,k) * 7, C(7,k+1)]: (dw)_K = sum_m (-1)^m ∂_{K[m]} w_{K without K[m]}."""
  pos, pos_k = _position(k), _position(k + 1)
  mat = np.zeros((len(pos) * DIM, len(pos_k)), dtype=np.int8)
  for K, n in pos_k.items():
    for m in range(k + 1):
      mat[pos[K[:m] + K[m + 1:]] * DIM + K[m], n] = (-1)**m
  return mat


def exterior_derivative_from_jacobian(jac: jax.typing.ArrayLike, k: int) -> jax.Array:
  """dw from the Jacobian jac[..., I, i] = ∂_i w_I of a k-form: the alternating sum -> [..., C(7,k+1)]."""
  _check_degree(k, "k", hi=DIM - 1)
  jac = jnp.asarray(jac)
  n = math.comb(DIM, k)
  if jac.shape[-2:] != (n, DIM):
    raise ValueError(f"jac.shape={jac.shape} is invalid: allowed [..., {n}, 7] (∂_i w_I)")
  flat = jac.reshape(jac.shape[:-2] + (n * DIM,))
  return jnp.einsum("...a,ab->...b", flat, _const(_derivative_matrix(k), jac.dtype),
                    precision=_HIGHEST)


def exterior_derivative(form_fn: Callable[[jax.Array], jax.Array], k: int
                        ) -> Callable[[jax.Array], jax.Array]:
  """x -> components of d(form_fn)(x): one `jax.jacfwd` (7 tangents) plus antisymmetrisation.

  Args:
    form_fn: maps one point x [7] to the C(7,k) components of a k-form; `jax.vmap` batches
      the returned function.
    k: degree of form_fn's form (0..6).
  """
  _check_degree(k, "k", hi=DIM - 1)

  def d(x: jax.Array) -> jax.Array:
    return exterior_derivative_from_jacobian(jax.jacfwd(form_fn)(x), k)

  return d
