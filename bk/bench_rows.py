"""Rows of the BK-Core benchmark (bk/bench.py part A): the timed functions and their float64 checks.

Every row maps the same problem size (B*H independent sequences of N positions) to its output:
  * BK rows: diag((H - zI)^-1), H = tridiag(1, a, 1), a = -2 + v, v ~ U(-3, 3), z = i (the
    original's setting); forward+backward = the gradient of sum(w0 Re G + w1 Im G) w.r.t. the
    potentials a (what the package's training differentiates; z and the off-diagonals are constants).
  * `lru`: a diagonal linear recurrence h_t = lambda * h_{t-1} + x_t (LRU/S5 style, complex64, one
    lambda per sequence, |lambda| in [0.9, 0.999)) by `jax.lax.associative_scan`; gradient w.r.t. x.
  * `attention`: causal softmax attention (one head per sequence, head dim ATTN_HEAD_DIM, O(N^2)
    memory and work); gradient w.r.t. q, k, v.
Float64 references (NumPy): the continued fraction for G and a hand-written adjoint of it for the
gradient, the sequential recurrence for the LRU and its reverse recurrence for the gradient, and
for attention a sample of query rows (its output rows and dL/dq rows; heads are independent).
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax import lax
import numpy as np

from bk import core

Z = 1j
ATTN_HEAD_DIM = 16
ATTN_CHECK_ROWS = 64          # sampled query rows checked against float64 (incl. the first and last)
TOLERANCE = 1e-3              # max relative error vs float64 above which a row is INVALID


# ----------------------------------------------------------------------------- inputs
def bk_inputs(bh: int, n: int, seed: int = 0):
  """The original's setting: a = -2 + v, v ~ U(-3, 3) (v_max = 3), b = c = 1; w: upstream grad."""
  rng = np.random.default_rng(seed)
  a = (-2.0 + rng.uniform(-3.0, 3.0, (bh, n))).astype(np.float32)
  off = np.ones((bh, n - 1), np.float32)
  w = rng.normal(size=(2, bh, n)).astype(np.float32)
  return a, off, w


def lru_inputs(bh: int, n: int, seed: int = 0):
  rng = np.random.default_rng(seed + 1)
  x = rng.normal(size=(bh, n)).astype(np.float32)
  lam = (rng.uniform(0.9, 0.999, bh) * np.exp(1j * rng.uniform(0, np.pi, bh))).astype(np.complex64)
  w = rng.normal(size=(2, bh, n)).astype(np.float32)
  return x, lam, w


def attention_inputs(bh: int, n: int, seed: int = 0, d: int = ATTN_HEAD_DIM):
  rng = np.random.default_rng(seed + 2)
  q, k, v, w = (rng.normal(size=(bh, n, d)).astype(np.float32) for _ in range(4))
  return q, k, v, w


# ----------------------------------------------------------------------------- float64 references
def reference_float64(a, b, c, z, causal=False) -> np.ndarray:
  """float64 continued fractions in NumPy (validated against dense inverses in the tests)."""
  dl, dr, alpha = _denominators(a, b, c, z)
  return 1.0 / dl if causal else 1.0 / (dl + dr - alpha)


def _denominators(a, b, c, z):
  a = np.asarray(a, np.float64)
  k = np.asarray(b, np.float64) * np.asarray(c, np.float64)
  alpha = a - z
  n = a.shape[-1]
  dl, dr = np.empty_like(alpha), np.empty_like(alpha)
  dl[..., 0], dr[..., -1] = alpha[..., 0], alpha[..., -1]
  for i in range(1, n):
    dl[..., i] = alpha[..., i] - k[..., i - 1] / dl[..., i - 1]
    dr[..., n - 1 - i] = alpha[..., n - 1 - i] - k[..., n - 1 - i] / dr[..., n - i]
  return dl, dr, alpha


def reference_grad_float64(a, b, c, z, w) -> np.ndarray:
  """d/da of sum(w0 Re G + w1 Im G) in float64: reverse mode through the continued fractions.

  With c_j = w0_j + i w1_j the loss is Re(sum conj(c_j) G_j) and G is holomorphic in alpha = a - z,
  so dL/da_i = Re(alpha_bar_i) with holomorphic adjoints alpha_bar.
  """
  dl, dr, alpha = _denominators(a, b, c, z)
  k = np.asarray(b, np.float64) * np.asarray(c, np.float64)
  n = alpha.shape[-1]
  den = dl + dr - alpha
  g_bar = np.asarray(w[0], np.float64) - 1j * np.asarray(w[1], np.float64)   # conj(c)
  d_bar = -g_bar / den ** 2                    # G = 1/den
  dl_bar, dr_bar = d_bar.copy(), d_bar.copy()
  a_bar = -d_bar
  for i in range(n - 1, 0, -1):                # dl_i = alpha_i - k_{i-1} / dl_{i-1}
    dl_bar[..., i - 1] += dl_bar[..., i] * k[..., i - 1] / dl[..., i - 1] ** 2
  a_bar = a_bar + dl_bar
  for i in range(0, n - 1):                    # dr_i = alpha_i - k_i / dr_{i+1}
    dr_bar[..., i + 1] += dr_bar[..., i] * k[..., i] / dr[..., i + 1] ** 2
  a_bar = a_bar + dr_bar
  return np.real(a_bar)


def lru_reference_float64(x, lam):
  x = np.asarray(x, np.float64)
  lam = np.asarray(lam, np.complex128)
  h = np.empty(x.shape, np.complex128)
  acc = np.zeros(x.shape[:-1], np.complex128)
  for t in range(x.shape[-1]):
    acc = lam * acc + x[..., t]
    h[..., t] = acc
  return h


def lru_reference_grad_float64(x, lam, w):
  """dL/dx_s = Re(r_s), r_s = c_s + conj(lambda) r_{s+1} (c = w0 + i w1, L = sum w0 Re h + w1 Im h)."""
  c = np.asarray(w[0], np.float64) + 1j * np.asarray(w[1], np.float64)
  lam_c = np.conj(np.asarray(lam, np.complex128))
  r = np.empty(c.shape, np.complex128)
  acc = np.zeros(c.shape[:-1], np.complex128)
  for t in range(c.shape[-1] - 1, -1, -1):
    acc = c[..., t] + lam_c * acc
    r[..., t] = acc
  return np.real(r)


def attention_check_rows(n: int) -> np.ndarray:
  return np.unique(np.linspace(0, n - 1, min(n, ATTN_CHECK_ROWS)).round().astype(int))


def attention_reference_float64(q, k, v, w, rows):
  """Output rows and dL/dq rows (L = sum w * out) of causal softmax attention, head 0, float64."""
  q, k, v, w = (np.asarray(x[0], np.float64) for x in (q, k, v, w))
  d = q.shape[-1]
  out, dq = [], []
  for i in rows:
    s = k[:i + 1] @ q[i] / math.sqrt(d)
    p = np.exp(s - s.max())
    p /= p.sum()
    out.append(p @ v[:i + 1])
    dp = v[:i + 1] @ w[i]
    ds = p * (dp - np.dot(p, dp))
    dq.append(ds @ k[:i + 1] / math.sqrt(d))
  return np.stack(out), np.stack(dq)


# ----------------------------------------------------------------------------- JAX rows
def theta_phi_diagonal(a, b, c, z=Z, dtype=jnp.complex64):
  """The original's theta/phi recursion (reference bk.md 1.1) as two compiled lax.scans.

  theta_0 = 1, theta_1 = a_s[0], theta_{i+1} = a_s[i] theta_i - k_{i-1} theta_{i-1};
  phi_{N-1} = 1, phi_{N-2} = a_s[N-1], phi_i = a_s[i+1] phi_{i+1} - k_i phi_{i+2};
  G_ii = theta_i phi_i / (theta_N + 1e-18). No post-processing: overflow shows as Inf/NaN.
  a: [B, N] real, b, c: [B, N-1] -> dtype [B, N]. dtype=complex128 needs jax_enable_x64.
  """
  if jnp.dtype(dtype) == jnp.complex128 and not jax.config.jax_enable_x64:
    raise ValueError("theta_phi_diagonal: dtype=complex128 needs jax_enable_x64")
  n = a.shape[-1]
  a_s = (jnp.asarray(a).astype(dtype) - z).T                          # [N, B]
  k = (jnp.asarray(b) * jnp.asarray(c)).astype(dtype).T               # [N-1, B]
  one = jnp.ones_like(a_s[0])

  def step(carry, x):
    prev1, prev2 = carry
    ai, ki = x
    new = ai * prev1 - ki * prev2
    return (new, prev1), new

  if n == 1:
    theta = jnp.stack([one, a_s[0]])
    phi = one[None]
  else:
    _, th = lax.scan(step, (a_s[0], one), (a_s[1:], k))                # theta_2 .. theta_N
    theta = jnp.concatenate([one[None], a_s[:1], th])
    _, ph = lax.scan(step, (a_s[n - 1], one), (a_s[1:n - 1][::-1], k[:n - 2][::-1]))
    phi = jnp.concatenate([ph[::-1], a_s[n - 1:], one[None]])         # phi_0 .. phi_{N-1}
  g = theta[:-1] * phi / (theta[-1:] + 1e-18)
  return g.T


def lru_scan(x, lam):
  """h_t = lam * h_{t-1} + x_t for x [B, N] real, lam [B] complex64, by associative_scan."""
  u = jnp.asarray(x).T.astype(jnp.complex64)                           # [N, B], sequence-major
  lam_t = jnp.broadcast_to(jnp.asarray(lam, jnp.complex64), u.shape)

  def combine(e1, e2):
    a1, b1 = e1
    a2, b2 = e2
    return a2 * a1, a2 * b1 + b2

  _, h = lax.associative_scan(combine, (lam_t, u), axis=0)
  return h.T


def causal_attention(q, k, v):
  """Causal softmax attention, [B, N, d] each -> [B, N, d] (materialises the N x N scores)."""
  d = q.shape[-1]
  s = jnp.einsum("bqd,bkd->bqk", q, k) / math.sqrt(d)
  n = q.shape[1]
  mask = jnp.arange(n)[:, None] >= jnp.arange(n)[None, :]
  s = jnp.where(mask, s, -jnp.inf)
  return jnp.einsum("bqk,bkd->bqd", jax.nn.softmax(s, axis=-1), v)


def bk_fn(method: str, backward: bool):
  """A jittable (a, off, w) function of a BK row (package methods or the theta/phi scan)."""
  if method == "theta_phi_c64":
    fwd = lambda a, off: theta_phi_diagonal(a, off, off, Z, jnp.complex64)
  elif method == "sequential_groups8":
    fwd = lambda a, off: sequential_lane_groups(a, off, off, Z, 8)
  elif method == "theta_phi_c128":
    fwd = lambda a, off: theta_phi_diagonal(a.astype(jnp.float64), off, off, Z, jnp.complex128)
  else:
    fwd = lambda a, off: core.resolvent_diagonal(a, off, off, Z, method=method)
  if not backward:
    return lambda a, off, w: fwd(a, off)

  def loss(a, off, w):
    g = fwd(a, off)
    return jnp.sum(w[0] * jnp.real(g) + w[1] * jnp.imag(g))
  return jax.grad(loss)


def lru_fn(backward: bool):
  if not backward:
    return lambda x, lam, w: lru_scan(x, lam)
  return jax.grad(lambda x, lam, w: jnp.sum(w[0] * jnp.real(h := lru_scan(x, lam)) +
                                            w[1] * jnp.imag(h)))


def attention_fn(backward: bool):
  if not backward:
    return lambda q, k, v, w: causal_attention(q, k, v)
  return jax.grad(lambda q, k, v, w: jnp.sum(w * causal_attention(q, k, v)), argnums=(0, 1, 2))


# ----------------------------------------------------------------------------- validity
def check(out, ref, tolerance: float = TOLERANCE) -> dict:
  """Compares an output with its float64 reference: INVALID on non-finite, zero or wrong values.

  Returns {"valid", "rel_err", "nonfinite", "zeros", "reason"}; rel_err = max |x - ref| / max |ref|
  (normwise: the real part of a complex sum, e.g. a gradient entry, can be near zero while its
  neighbours are not, so an entry-wise ratio would measure cancellation, not the row's accuracy;
  entry-wise errors of the BK-Core are part B).
  """
  x = np.asarray(out)
  ref = np.asarray(ref)
  nonfinite = int((~np.isfinite(x)).sum())
  zeros = int((x == 0).sum()) - int((ref == 0).sum())
  res = {"nonfinite": nonfinite, "zeros": max(zeros, 0), "rel_err": None, "valid": False}
  if x.shape != ref.shape:
    res["reason"] = f"shape {x.shape} != reference {ref.shape}"
    return res
  if nonfinite:
    res["reason"] = f"{nonfinite} of {x.size} outputs non-finite (overflow)"
    return res
  err = float(np.max(np.abs(x.astype(np.complex128) - ref)) / (np.max(np.abs(ref)) + 1e-300))
  res["rel_err"] = err
  if zeros > 0:
    res["reason"] = f"{zeros} of {x.size} outputs are exactly 0 (overflow zeroed), rel err {err:.2g}"
  elif not err <= tolerance:
    res["reason"] = f"max relative error {err:.2g} > {tolerance:g}"
  else:
    res["valid"] = True
    res["reason"] = ""
  return res


# ----------------------------------------------------------------------------- part P: the bare loop
def fused_loop_inputs(a, off, z=Z):
  """The [N, 2M] sequence-major inputs that method="sequential" builds before its lax.scan
  (left pass | reversed right pass), laid out in NumPy so that only the loop is timed."""
  a = np.asarray(a, np.float32)
  k = np.asarray(off, np.float32) ** 2
  alpha_re = (a - np.float32(np.real(z))).T
  alpha_im = np.full_like(alpha_re, -np.imag(z))
  kprev = np.concatenate([np.zeros((1, a.shape[0]), np.float32), k.T])
  kprev_r = np.concatenate([np.zeros((1, a.shape[0]), np.float32), k.T[::-1]])
  return (np.ascontiguousarray(np.concatenate([alpha_re, alpha_re[::-1]], 1)),
          np.ascontiguousarray(np.concatenate([alpha_im, alpha_im], 1)),
          np.ascontiguousarray(np.concatenate([kprev, kprev_r], 1)))


def loop_only_fn(alpha_re, alpha_im, kprev):
  """The bare continued-fraction lax.scan of method="sequential" on [N, 2M]: denominators."""
  zero = jnp.zeros_like(alpha_re[0])
  return core._continued_fraction(alpha_re, alpha_im, kprev, zero, zero, unroll=1)


def sequential_lane_groups(a, b, c, z=Z, group: int = 8):
  """method="sequential" with its lanes (2 B*H scans) run `group` at a time (lax.map over groups).

  Part P candidate: XLA:CPU runs a lax.scan whose per-step arrays have <= 8 elements ~10x faster
  per element than one with 16 or more (measured in part P), so the loop is split into groups.
  a: [B, N] real, b, c: [B, N-1] -> complex [B, N] (the full diagonal, as method="sequential").
  """
  a = jnp.asarray(a)
  m, n = a.shape
  k = jnp.asarray(b) * jnp.asarray(c)
  zero = jnp.zeros((m, 1), a.dtype)
  alpha_re = a - jnp.real(z).astype(a.dtype)
  lanes_re = jnp.concatenate([alpha_re, alpha_re[:, ::-1]], axis=0)           # [2M, N]
  lanes_k = jnp.concatenate([jnp.concatenate([zero, k], 1),
                             jnp.concatenate([zero, k[:, ::-1]], 1)], axis=0)
  width = 2 * m
  groups = -(-width // group)
  pad = groups * group - width
  if pad:
    lanes_re = jnp.concatenate([lanes_re, jnp.ones((pad, n), a.dtype)], 0)
    lanes_k = jnp.concatenate([lanes_k, jnp.zeros((pad, n), a.dtype)], 0)
  to_gng = lambda x: x.reshape(groups, group, n).transpose(0, 2, 1)           # [G, N, g]
  ar, kp = to_gng(lanes_re), to_gng(lanes_k)
  ai = jnp.full_like(ar, -jnp.imag(z).astype(a.dtype))
  zg = jnp.zeros((group,), a.dtype)
  d_re, d_im = lax.map(lambda x: core._continued_fraction(*x, zg, zg, unroll=1), (ar, ai, kp))
  from_gng = lambda x: x.transpose(0, 2, 1).reshape(groups * group, n)[:width]
  d_re, d_im = from_gng(d_re), from_gng(d_im)
  out_re, out_im = core._reciprocal(d_re[:m] + d_re[m:, ::-1] - alpha_re,
                                    d_im[:m] + d_im[m:, ::-1] + jnp.imag(z).astype(a.dtype))
  return lax.complex(out_re, out_im)
