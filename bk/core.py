"""BK-Core: the diagonal of a tridiagonal resolvent (H - zI)^-1 in O(N).

H is tridiagonal with diagonal ``a`` (= H0 diagonal + potential v), super-diagonal ``b`` and
sub-diagonal ``c``; z is a complex shift with Im z > 0. With alpha_i = a_i - z and
k_i = b_i c_i the left- and right-truncated resolvents obey the continued fractions

    gL_i = 1 / (alpha_i - k_{i-1} gL_{i-1}),      gR_i = 1 / (alpha_i - k_i gR_{i+1}),

and the full diagonal is G_ii = 1 / (1/gL_i + 1/gR_i - alpha_i) (recursive Green's function
identity; reference bk.md section 2.3). Each continued-fraction step is the Moebius map of the
2x2 matrix M_i = [[alpha_i, -k_{i-1}], [1, 0]], so prefix products give every gL_i. The
products are projective (invariant to scaling), so each one is divided by a stop-gradient
norm: no overflow at any N, unlike the original's theta/phi determinants (which overflow near
N = 120 in complex64 and N = 1000 in complex128).

``method="scan"`` runs a two-level (blocked) associative scan in real arithmetic:
  1. blocks of ``block_size`` positions, all blocks in parallel: each block's transfer matrix by
     a ``lax.scan`` of the sparse step (M_j has a constant second row: 2 complex products),
  2. ``jax.lax.associative_scan`` over the normalised block matrices (the Moebius scan),
  3. inside each block, the continued fraction from the exact incoming value.
``method=None`` (the default) is ``"sequential"`` on CPU and ``"scan"`` elsewhere (`default_method`).
``block_size=1`` is the plain per-position Moebius associative scan; the default picks the block
length from the backend and the batch width (few long blocks on CPU, where loop steps are cheap
and the Blelloch scan costs ~4x the work; short blocks on accelerators). The left and right passes
run as one fused scan over stacked data. ``method="sequential"`` is the ``lax.scan`` continued fraction,
``method="dense"`` inverts the dense matrix (small N only).
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax
import numpy as np

from bk import core_grad

METHODS = ("scan", "sequential", "dense")
GRADIENTS = ("exact", "hybrid", "hybrid_legacy")
# Number of blocks on CPU. Measured (bk/bench.py, 2 busy shared cores, N = 2048, fused width 16
# and 128): one block (a plain lax.scan) has a 5-8x slower backward; 16 blocks run the forward
# ~2x faster than 4 but compile ~2x longer (the associative scan's levels dominate XLA CPU
# compile time); 8 is the compromise. Very wide batches need less parallelism over blocks.
CPU_BLOCKS = 8
CPU_BLOCKS_WIDE = 4             # fused width (2 * batch * heads; batch * heads if causal) > 256
ACCELERATOR_BLOCK_SIZE = 32     # GPU/TPU: short blocks, deep associative scan (loops are slow)


# Default method per backend (method=None). CPU: the lax.scan continued fraction, measured faster
# than the blocked Moebius scan forward+backward at every measured B*H in {1, 8, 64} and N in
# 128..65536 (bk/bench.py part A, README), and forward except at B*H = 8, N >= 512; it is also
# more accurate in complex64 (part B) - the continued fraction, not the associative scan, is what
# avoids the theta/phi overflow. Accelerators: the associative scan (log depth; no GPU data here).
DEFAULT_METHOD = {"cpu": "sequential"}
ACCELERATOR_DEFAULT_METHOD = "scan"


def default_method(backend: str | None = None) -> str:
  """The method used when method=None on `backend` (default: JAX's default backend)."""
  backend = backend or jax.default_backend()
  return DEFAULT_METHOD.get(backend, ACCELERATOR_DEFAULT_METHOD)


def auto_block_size(n: int, width: int) -> int:
  """Block length used when block_size=None for sequence length n and `width` scans."""
  if jax.default_backend() == "cpu":
    blocks = CPU_BLOCKS if width <= 256 else CPU_BLOCKS_WIDE
    return max(1, -(-n // blocks))
  return min(n, ACCELERATOR_BLOCK_SIZE)


def resolvent_diagonal(a, b, c, z, *, causal: bool = False, method: str | None = None,
                       block_size: int | None = None, gradient: str = "exact",
                       grad_blend: float = 0.0) -> jax.Array:
  """Diagonal of (H - zI)^-1 for tridiagonal H, batched over leading axes (batch, heads).

  Args:
    a: [..., N] real diagonal of H.
    b: [..., N-1] real super-diagonal (leading axes broadcastable to a's).
    c: [..., N-1] real sub-diagonal (same shape rules as b).
    z: complex shift, scalar or broadcastable to a.shape[:-1]; Im z > 0 is required.
    causal: if True return the left-truncated resolvent gL_i = [(H_{0..i} - z)^-1]_ii, whose
      value at i depends only on a, b, c at positions <= i (exactly: also bit-wise).
    method: "scan" (blocked associative Moebius scan), "sequential" (lax.scan reference) or
      "dense" (jnp.linalg.inv; O(N^3), causal dense is O(N^4): tests only); None: the
      backend's default (`default_method()`).
    block_size: positions per block for method="scan" (None: auto_block_size, 1: the plain
      per-position associative scan).
    gradient: "exact" (autodiff through the scan), "hybrid" (the original's GRAD_BLEND hybrid
      analytic gradient with the conj-correct formula) or "hybrid_legacy" (its Nov-14 form
      without the conjugate). Hybrid gradients flow to ``a`` only (b, c, z get zero).
    grad_blend: GRAD_BLEND alpha in [0, 1] for the hybrid gradients (static).

  Returns:
    complex [..., N] (complex64 for float32 inputs, complex128 for float64).
  """
  method = default_method() if method is None else method
  a, b, c, z_re, z_im = _validate(a, b, c, z, method, block_size, gradient, grad_blend)
  block = 0 if block_size is None else int(block_size)        # 0: chosen from the shapes
  if gradient == "exact":
    return _resolvent(a, b, c, z_re, z_im, causal, method, block)
  fn = lambda a, b, c, z_re, z_im: _resolvent(a, b, c, z_re, z_im, causal, method, block)
  return core_grad.hybrid_gradient(fn, a, b, c, z_re, z_im, float(grad_blend),
                                   gradient == "hybrid_legacy")


# ----------------------------------------------------------------------------- validation
def _is_concrete(x) -> bool:
  return not isinstance(x, jax.core.Tracer)


def _broadcasts_to(shape, target) -> bool:
  try:
    return np.broadcast_shapes(shape, target) == tuple(target)
  except ValueError:
    return False


def _validate(a, b, c, z, method, block_size, gradient, grad_blend):
  if method not in METHODS:
    raise ValueError(f"resolvent_diagonal: method={method!r} is invalid: allowed {METHODS}")
  if gradient not in GRADIENTS:
    raise ValueError(f"resolvent_diagonal: gradient={gradient!r} is invalid: allowed {GRADIENTS}")
  if block_size is not None and (not isinstance(block_size, (int, np.integer)) or block_size < 1):
    raise ValueError(f"resolvent_diagonal: block_size={block_size!r} is invalid: "
                     "allowed None or an integer >= 1")
  if not 0.0 <= float(grad_blend) <= 1.0:
    raise ValueError(f"resolvent_diagonal: grad_blend={grad_blend!r} is invalid: allowed [0, 1]")
  arrays = {}
  for name, x in (("a", a), ("b", b), ("c", c)):
    x = jnp.asarray(x)
    if jnp.issubdtype(x.dtype, jnp.complexfloating):
      raise ValueError(f"resolvent_diagonal: {name} has dtype {x.dtype}: allowed real arrays")
    if x.ndim < 1:
      raise ValueError(f"resolvent_diagonal: {name}.shape={x.shape} is invalid: "
                       "allowed at least 1 dimension [..., N]")
    arrays[name] = x
  a, b, c = arrays["a"], arrays["b"], arrays["c"]
  dtype = jnp.promote_types(jnp.result_type(a, b, c), jnp.float32)
  if not jnp.issubdtype(dtype, jnp.floating) or jnp.finfo(dtype).bits < 32:
    dtype = jnp.float32
  n = a.shape[-1]
  if n < 1:
    raise ValueError(f"resolvent_diagonal: a.shape={a.shape} is invalid: allowed N >= 1")
  for name, x in (("b", b), ("c", c)):
    if x.shape[-1] != n - 1:
      raise ValueError(f"resolvent_diagonal: {name}.shape={x.shape} is invalid: allowed "
                       f"[..., N-1] = [..., {n - 1}] for a.shape={a.shape}")
  batch = a.shape[:-1]
  if not all(_broadcasts_to(x.shape[:-1], batch) for x in (b, c)):
    raise ValueError(f"resolvent_diagonal: b.shape={b.shape}, c.shape={c.shape} are invalid: "
                     f"leading axes must broadcast to a.shape[:-1]={batch}")
  z = jnp.asarray(z)
  if not _broadcasts_to(z.shape, batch):
    raise ValueError(f"resolvent_diagonal: z.shape={z.shape} is invalid: allowed a scalar or "
                     f"a shape broadcastable to a.shape[:-1]={batch}")
  z_re = jnp.real(z).astype(dtype)
  z_im = jnp.imag(z).astype(dtype)
  # Value checks only where values are known (not under jit); NumPy avoids tiny XLA compiles.
  for name, x in (("a", a), ("b", b), ("c", c), ("z", z)):
    if _is_concrete(x) and not np.all(np.isfinite(np.asarray(x))):
      raise ValueError(f"resolvent_diagonal: {name} contains NaN or Inf: allowed finite values")
  if _is_concrete(z):
    if not np.all(np.imag(np.asarray(z)) > 0):
      raise ValueError(f"resolvent_diagonal: z={np.asarray(z)!r} is invalid: allowed Im z > 0 "
                       "(the resolvent is taken in the upper half-plane)")
  b = jnp.broadcast_to(b.astype(dtype), batch + (n - 1,))
  c = jnp.broadcast_to(c.astype(dtype), batch + (n - 1,))
  z_re = jnp.broadcast_to(z_re, batch)
  z_im = jnp.broadcast_to(z_im, batch)
  return a.astype(dtype), b, c, z_re, z_im


# ----------------------------------------------------------------------------- dispatch
@functools.partial(jax.jit, static_argnums=(5, 6, 7))
def _resolvent(a, b, c, z_re, z_im, causal, method, block):
  """a: [..., N]; b, c: [..., N-1]; z_re, z_im: [...] (all broadcast, real) -> complex [..., N]."""
  batch, n = a.shape[:-1], a.shape[-1]
  if method == "dense":
    return _dense(a, b, c, lax.complex(z_re, z_im), causal)
  # Sequence-major layout [N, M]: the scan axis leads, so every per-step slice is contiguous.
  m = int(np.prod(batch, dtype=np.int64))
  to_nm = lambda x: x.reshape(m, -1).T
  alpha_re = to_nm(a - z_re[..., None])
  alpha_im = jnp.broadcast_to(-z_im.reshape(1, m), (n, m))
  k = to_nm(b * c)
  zero = jnp.zeros((1, m), a.dtype)
  kprev = jnp.concatenate([zero, k], axis=0)           # k_{i-1}, k_{-1} = 0
  if method == "sequential":
    den = lambda ar, ai, kp: _continued_fraction(ar, ai, kp, jnp.zeros_like(ar[0]),
                                                 jnp.zeros_like(ar[0]), unroll=1)
  else:
    width = m if causal else 2 * m
    den = functools.partial(_blocked_denominators, block=block or auto_block_size(n, width))
  if causal:
    d_re, d_im = den(alpha_re, alpha_im, kprev)
    out_re, out_im = _reciprocal(d_re, d_im)
  else:
    # Right pass = left pass on the reversed sequence; both run as one scan over [N, 2M].
    kprev_r = jnp.concatenate([zero, k[::-1]], axis=0)
    d_re, d_im = den(jnp.concatenate([alpha_re, alpha_re[::-1]], axis=1),
                     jnp.concatenate([alpha_im, alpha_im], axis=1),
                     jnp.concatenate([kprev, kprev_r], axis=1))
    # 1/G_ii = 1/gL_i + 1/gR_i - alpha_i, and 1/gL_i, 1/gR_i are the denominators.
    out_re, out_im = _reciprocal(d_re[:, :m] + d_re[::-1, m:] - alpha_re,
                                 d_im[:, :m] + d_im[::-1, m:] - alpha_im)
  from_nm = lambda x: x.T.reshape(batch + (n,))
  return lax.complex(from_nm(out_re), from_nm(out_im))


def _reciprocal(x_re, x_im):
  inv = 1.0 / (x_re * x_re + x_im * x_im)
  return x_re * inv, -x_im * inv


# ----------------------------------------------------------------------------- sequential
def _continued_fraction(alpha_re, alpha_im, kprev, x_re, x_im, unroll):
  """d_j = alpha_j - kprev_j x_{j-1}, x_j = 1/d_j along axis 0 from x_{-1} = x; returns d."""
  def step(x, inputs):
    ar, ai, kp = inputs
    d_re = ar - kp * x[0]
    d_im = ai - kp * x[1]
    return _reciprocal(d_re, d_im), (d_re, d_im)
  _, (d_re, d_im) = lax.scan(step, (x_re, x_im), (alpha_re, alpha_im, kprev), unroll=unroll)
  return d_re, d_im


# ----------------------------------------------------------------------------- Moebius scan
def _normalise(mat):
  """Divide the 8 real components of a 2x2 complex matrix by a stop-gradient max |entry|.

  Exact for the output: the Moebius ratio is homogeneous of degree 0 in the matrix.
  """
  m = functools.reduce(jnp.maximum, [jnp.abs(x) for x in mat])
  m = lax.stop_gradient(jnp.where(m > 0, m, 1.0))
  inv = 1.0 / m
  return tuple(x * inv for x in mat)


def _combine(earlier, later):
  """later @ earlier for stacked 2x2 complex matrices [c, 2 (re, im), 2, 2, M], normalised.

  Written as one broadcast product + reduction so XLA emits a few fused kernels per combine
  (8 separate real component arrays compile to ~17 kernels each: compile time, not speed).
  """
  b_re, b_im = later[:, 0, :, :, None], later[:, 1, :, :, None]        # [c, i, j, 1, M]
  a_re, a_im = earlier[:, 0, None], earlier[:, 1, None]                # [c, 1, j, l, M]
  out_re = jnp.sum(b_re * a_re - b_im * a_im, axis=2)
  out_im = jnp.sum(b_re * a_im + b_im * a_re, axis=2)
  out = jnp.stack([out_re, out_im], axis=1)
  m = jnp.max(jnp.abs(out), axis=(1, 2, 3), keepdims=True)
  m = lax.stop_gradient(jnp.where(m > 0, m, 1.0))
  return out * (1.0 / m)


def _block_matrices(alpha_re, alpha_im, kprev, unroll):
  """Transfer matrix M_{L-1} ... M_0 of each block; inputs [L, C, M] -> 8 arrays [C, M].

  M_j = [[alpha_j, -k_{j-1}], [1, 0]] has a constant second row, so M_j P costs two complex
  products (new row 0 = alpha_j row0 - k_{j-1} row1, new row 1 = old row 0); the product is
  renormalised every step (a stop-gradient max |entry|, exact for the Moebius ratio).
  """
  zeros = jnp.zeros_like(alpha_re[0])
  first = (alpha_re[0], alpha_im[0], -kprev[0], zeros, jnp.ones_like(zeros), zeros, zeros, zeros)

  def step(mat, inputs):
    pr, pi, qr, qi, _, _, _, _ = mat
    rr, ri, sr, si = mat[4:]
    a_r, a_i, k = inputs
    new = (a_r * pr - a_i * pi - k * rr, a_r * pi + a_i * pr - k * ri,
           a_r * qr - a_i * qi - k * sr, a_r * qi + a_i * qr - k * si, pr, pi, qr, qi)
    return _normalise(new), None

  mat, _ = lax.scan(step, _normalise(first), (alpha_re[1:], alpha_im[1:], kprev[1:]),
                    unroll=unroll)
  return mat


def _blocked_denominators(alpha_re, alpha_im, kprev, block, unroll=1):
  """Left continued-fraction denominators d_i (gL_i = 1/d_i) for [N, M] inputs, blocked scan."""
  n, m = alpha_re.shape
  block = max(1, min(block, n))
  nblocks = -(-n // block)
  pad = nblocks * block - n
  if pad:
    # Padding at the end never influences earlier positions of a left pass.
    padder = lambda x, v: jnp.concatenate([x, jnp.full((pad, m), v, x.dtype)], axis=0)
    alpha_re, alpha_im, kprev = padder(alpha_re, 1.0), padder(alpha_im, 0.0), padder(kprev, 0.0)
  # [N, M] -> [L, C, M]: position i = c * L + j; slices over j are contiguous [C, M] slabs.
  to_lcm = lambda x: x.reshape(nblocks, block, m).transpose(1, 0, 2)
  ar, ai, kp = to_lcm(alpha_re), to_lcm(alpha_im), to_lcm(kprev)
  pr, pi, qr, qi, rr, ri, sr, si = _block_matrices(ar, ai, kp, unroll)
  mats = jnp.stack([jnp.stack([jnp.stack([pr, qr], 1), jnp.stack([rr, sr], 1)], 1),
                    jnp.stack([jnp.stack([pi, qi], 1), jnp.stack([ri, si], 1)], 1)], 1)
  prefix = lax.associative_scan(_combine, mats, axis=0)        # [C, 2, 2, 2, M]
  pr, pi, rr, ri = prefix[:, 0, 0, 0], prefix[:, 1, 0, 0], prefix[:, 0, 1, 0], prefix[:, 1, 1, 0]
  # gL at the end of block c is P[1,0] / P[0,0] of the inclusive prefix; block 0 starts from 0.
  den = 1.0 / (pr * pr + pi * pi)
  x_re = (rr * pr + ri * pi) * den
  x_im = (ri * pr - rr * pi) * den
  zero = jnp.zeros((1, m), alpha_re.dtype)
  x_re = jnp.concatenate([zero, x_re[:-1]], axis=0)
  x_im = jnp.concatenate([zero, x_im[:-1]], axis=0)
  d_re, d_im = _continued_fraction(ar, ai, kp, x_re, x_im, unroll=unroll)
  from_lcm = lambda x: x.transpose(1, 0, 2).reshape(nblocks * block, m)[:n]
  return from_lcm(d_re), from_lcm(d_im)


# ----------------------------------------------------------------------------- dense
def _dense(a, b, c, z, causal):
  """jnp.linalg reference: [..., N] -> complex [..., N]; O(N^3) (causal: O(N^4))."""
  n = a.shape[-1]
  cdtype = jnp.result_type(a.dtype, jnp.complex64)
  eye = jnp.eye(n, dtype=cdtype)
  mat = (a[..., :, None] * eye + _offdiag(b, n, 1) + _offdiag(c, n, -1)).astype(cdtype)
  mat = mat - z[..., None, None] * eye
  if not causal:
    return jnp.diagonal(jnp.linalg.inv(mat), axis1=-2, axis2=-1)
  idx = jnp.arange(n)

  def truncated(i):
    # [(H - z)_{0..i}]^-1_ii: decouple rows/columns > i and put 1 on their diagonal.
    keep = (idx[:, None] <= i) & (idx[None, :] <= i)
    m_i = jnp.where(keep, mat, eye)
    return jnp.linalg.inv(m_i)[..., i, i]

  return jnp.moveaxis(jax.vmap(truncated)(idx), 0, -1)


def _offdiag(x, n, offset):
  if n == 1:
    return jnp.zeros(x.shape[:-1] + (1, 1), x.dtype)
  return jax.vmap(lambda v: jnp.diag(v, offset), in_axes=0)(x.reshape(-1, n - 1)).reshape(
      x.shape[:-1] + (n, n))
