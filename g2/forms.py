"""Exterior algebra on R^7 in components, with constant index tables.

A k-form is stored as its C(7, k) independent components w_I, I = (i1 < ... < ik) in
lexicographic order (21 two-form, 35 three-form, 35 four-form components), in the last axis
of an array; leading axes are batch axes. Conventions (reference g2.md §3):

* |w|^2 = (1/k!) w_{i1..ik} w^{i1..ik} = sum over sorted I, J of w_I C_k(g^-1)_{IJ} w_J;
* (a ∧ b)_K = sum over I ∪ J = K of sign(I, J -> K) a_I b_J  (i.e. (p+q)!/(p! q!) Alt(a ⊗ b));
* (⋆w)_J = (1/k!) sqrt(det g) w^{i1..ik} ε_{i1..ik J}, orientation ε_{1..7} = +1;
* (dw)_{i0..ik} = sum_m (-1)^m ∂_{i_m} w_{i0..î_m..ik}.

Every operation is a gather / einsum with index and sign tables built once in NumPy
(`functools.lru_cache`), so nothing loops over components or permutations at trace time.
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


@functools.lru_cache(maxsize=None)
def _tensor_table(k: int) -> tuple[np.ndarray, np.ndarray]:
  """For every ordered multi-index (flattened 7^k): component position (pad = C(7,k)) and sign."""
  pos = _position(k)
  pad = len(pos)
  idx = np.full(DIM**k, pad, dtype=np.int32)
  sign = np.zeros(DIM**k, dtype=np.int8)
  for flat, multi in enumerate(itertools.product(range(DIM), repeat=k)):
    s, srt = _sort_sign(multi)
    if s:
      idx[flat], sign[flat] = pos[srt], s
  return idx, sign


def _pad(w: jax.Array) -> jax.Array:
  return jnp.concatenate([w, jnp.zeros(w.shape[:-1] + (1,), w.dtype)], axis=-1)


def to_tensor(comps: jax.typing.ArrayLike, k: int) -> jax.Array:
  """Fully antisymmetric tensor [..., 7, ..., 7] (k axes) from components [..., C(7,k)]."""
  _check_degree(k, "k")
  comps = jnp.asarray(comps)
  _check_components(comps, k, "comps")
  idx, sign = _tensor_table(k)
  t = _pad(comps)[..., idx] * sign.astype(comps.dtype)
  return t.reshape(comps.shape[:-1] + (DIM,) * k)


@functools.lru_cache(maxsize=None)
def _flat_sorted(k: int) -> np.ndarray:
  c = combinations(k)
  return (c * (DIM ** np.arange(k - 1, -1, -1))).sum(axis=1).astype(np.int32)


def from_tensor(t: jax.typing.ArrayLike, k: int) -> jax.Array:
  """Components [..., C(7,k)] of an antisymmetric tensor [..., 7, ..., 7] (reads i<j<.. entries)."""
  _check_degree(k, "k")
  t = jnp.asarray(t)
  if t.ndim < k or t.shape[t.ndim - k:] != (DIM,) * k:
    raise ValueError(f"t.shape={t.shape} is invalid: allowed [..., {', '.join(['7'] * k)}]")
  return t.reshape(t.shape[:t.ndim - k] + (DIM**k,))[..., _flat_sorted(k)]


# ----------------------------------------------------------------------------------------
# Wedge and interior products.


@functools.lru_cache(maxsize=None)
def _wedge_table(p: int, q: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """For each (p+q)-component K and each split K = I ∪ J: positions of I, J and the sign."""
  pos_p, pos_q = _position(p), _position(q)
  n_split = math.comb(p + q, p)
  rows_a, rows_b, rows_s = [], [], []
  for K in combinations(p + q):
    a, b, s = [], [], []
    for I in itertools.combinations(tuple(int(i) for i in K), p):
      J = tuple(i for i in K if i not in I)
      a.append(pos_p[I]), b.append(pos_q[J]), s.append(_sort_sign(I + J)[0])
    rows_a.append(a), rows_b.append(b), rows_s.append(s)
  shape = (len(rows_a), n_split)
  return (np.array(rows_a, np.int32).reshape(shape), np.array(rows_b, np.int32).reshape(shape),
          np.array(rows_s, np.int8).reshape(shape))


def wedge(a: jax.typing.ArrayLike, p: int, b: jax.typing.ArrayLike, q: int) -> jax.Array:
  """a ∧ b for a p-form a [..., C(7,p)] and a q-form b [..., C(7,q)] -> [..., C(7,p+q)]."""
  _check_degree(p, "p")
  _check_degree(q, "q", hi=DIM - p)
  a, b = jnp.asarray(a), jnp.asarray(b)
  _check_components(a, p, "a")
  _check_components(b, q, "b")
  ia, ib, sign = _wedge_table(p, q)
  dtype = jnp.result_type(a, b)
  return jnp.sum(a[..., ia] * b[..., ib] * sign.astype(dtype), axis=-1)


@functools.lru_cache(maxsize=None)
def _interior_table(k: int) -> tuple[np.ndarray, np.ndarray]:
  """For each (k-1)-component J and each direction i: position of sort(i, J) (pad) and sign."""
  pos = _position(k)
  pad = len(pos)
  rows = combinations(k - 1)
  idx = np.full((len(rows), DIM), pad, np.int32)
  sign = np.zeros((len(rows), DIM), np.int8)
  for n, J in enumerate(rows):
    for i in range(DIM):
      s, srt = _sort_sign((i,) + tuple(int(j) for j in J))
      if s:
        idx[n, i], sign[n, i] = pos[srt], s
  return idx, sign


def interior(v: jax.typing.ArrayLike, w: jax.typing.ArrayLike, k: int) -> jax.Array:
  """Interior product v ⌟ w, (v⌟w)_{J} = v^i w_{iJ}, for a vector v [..., 7] and k-form w."""
  _check_degree(k, "k", lo=1)
  v, w = jnp.asarray(v), jnp.asarray(w)
  _check_components(w, k, "w")
  if v.shape[-1:] != (DIM,):
    raise ValueError(f"v.shape={v.shape} is invalid: allowed [..., 7] (a vector on R^7)")
  idx, sign = _interior_table(k)
  gathered = _pad(w)[..., idx]  # [..., C(7,k-1), 7]
  return jnp.einsum("...ji,ji,...i->...j", gathered, sign.astype(gathered.dtype), v)


# ----------------------------------------------------------------------------------------
# Metric operations: raising indices, inner products, Hodge star.


@functools.lru_cache(maxsize=None)
def _euclidean_star_table(k: int) -> tuple[np.ndarray, np.ndarray]:
  """(⋆_δ w)_J = ε(I, J) w_I with I the complement of J: source positions and signs."""
  pos = _position(k)
  rows = combinations(DIM - k)
  src = np.zeros(len(rows), np.int32)
  sign = np.zeros(len(rows), np.int8)
  for n, J in enumerate(rows):
    I = tuple(i for i in range(DIM) if i not in J)
    src[n], sign[n] = pos[I], _sort_sign(I + tuple(int(j) for j in J))[0]
  return src, sign


def euclidean_star(w: jax.Array, k: int) -> jax.Array:
  """Flat-metric Hodge star of a k-form: a signed permutation of components -> (7-k)-form."""
  src, sign = _euclidean_star_table(k)
  return w[..., src] * sign.astype(w.dtype)


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


def metric_inverse_and_volume(g: jax.typing.ArrayLike) -> tuple[jax.Array, jax.Array]:
  """(g^-1, sqrt(det g)) of a positive-definite metric [..., 7, 7] via Cholesky (NaN if not PD)."""
  g = jnp.asarray(g)
  if g.shape[-2:] != (DIM, DIM):
    raise ValueError(f"g.shape={g.shape} is invalid: allowed [..., 7, 7]")
  chol = jnp.linalg.cholesky(g)
  eye = jnp.broadcast_to(jnp.eye(DIM, dtype=g.dtype), g.shape)
  g_inv = jax.scipy.linalg.cho_solve((chol, True), eye)
  sqrt_det = jnp.prod(jnp.diagonal(chol, axis1=-2, axis2=-1), axis=-1)
  return g_inv, sqrt_det


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
def _derivative_table(k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """For each (k+1)-component K and slot m: position of K without K[m], direction K[m], (-1)^m."""
  pos = _position(k)
  rows = combinations(k + 1)
  comp = np.zeros((len(rows), k + 1), np.int32)
  direction = np.zeros((len(rows), k + 1), np.int32)
  sign = np.zeros((len(rows), k + 1), np.int8)
  for n, K in enumerate(rows):
    K = tuple(int(i) for i in K)
    for m in range(k + 1):
      comp[n, m] = pos[K[:m] + K[m + 1:]]
      direction[n, m] = K[m]
      sign[n, m] = (-1)**m
  return comp, direction, sign


def exterior_derivative_from_jacobian(jac: jax.typing.ArrayLike, k: int) -> jax.Array:
  """dw from the Jacobian jac[..., I, i] = ∂_i w_I of a k-form: the alternating sum -> [..., C(7,k+1)]."""
  _check_degree(k, "k", hi=DIM - 1)
  jac = jnp.asarray(jac)
  n = math.comb(DIM, k)
  if jac.shape[-2:] != (n, DIM):
    raise ValueError(f"jac.shape={jac.shape} is invalid: allowed [..., {n}, 7] (∂_i w_I)")
  comp, direction, sign = _derivative_table(k)
  return jnp.sum(jac[..., comp, direction] * sign.astype(jac.dtype), axis=-1)


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
