"""BK-Core resolvent diagonal: ground truths, accuracy, causality, errors."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bk.core import resolvent_diagonal

ACCURACY_N = (1, 2, 3, 5, 128, 1000, 4097, 16384)


def _max_rel_err(x, ref):
  x, ref = np.asarray(x, np.complex128), np.asarray(ref, np.complex128)
  return float(np.max(np.abs(x - ref) / np.abs(ref)))


def _numpy_reference(a, b, c, z, causal):
  """float64 continued fractions (bk.md 2.3) in NumPy, vectorised over the batch: [B, N]."""
  a, k = np.asarray(a, np.float64), np.asarray(b, np.float64) * np.asarray(c, np.float64)
  alpha = a - np.asarray(z, np.complex128)[..., None]
  n = a.shape[-1]
  d_left, d_right = np.empty_like(alpha), np.empty_like(alpha)
  d_left[:, 0], d_right[:, -1] = alpha[:, 0], alpha[:, -1]
  for i in range(1, n):
    d_left[:, i] = alpha[:, i] - k[:, i - 1] / d_left[:, i - 1]
    j = n - 1 - i
    d_right[:, j] = alpha[:, j] - k[:, j] / d_right[:, j + 1]
  return 1.0 / d_left if causal else 1.0 / (d_left + d_right - alpha)


@pytest.mark.usefixtures("x64")
@pytest.mark.parametrize("n", (1, 3, 37))
def test_matches_dense_inverse_float64(n, random_tridiagonal):
  rng = np.random.default_rng(n)
  a, b, c = random_tridiagonal(rng, (2, 3), n, k_zeros=True)
  z = np.array([1j, 0.1j, 0.5 + 0.05j])             # one shift per head
  for causal in (False, True):
    ref = resolvent_diagonal(a, b, c, z, causal=causal, method="dense")
    assert ref.dtype == jnp.complex128
    np.testing.assert_allclose(np.asarray(ref[0]), _numpy_reference(a[0], b[0], c[0], z, causal),
                               rtol=1e-12)
    for method, block in (("sequential", None), ("scan", 1), ("scan", 3)):
      out = resolvent_diagonal(a, b, c, z, causal=causal, method=method, block_size=block)
      assert out.dtype == jnp.complex128 and out.shape == (2, 3, n)
      assert _max_rel_err(out, ref) < 1e-12, (method, block, causal)


@pytest.mark.usefixtures("x64")
def test_dense_ground_truth_two_by_two():
  # H = [[a0, b], [c, a1]]: (H - z)^-1 diagonal = (a1 - z, a0 - z) / det.
  a0, a1, b, c, z = 0.3, -1.2, 0.7, 1.5, 0.2 + 0.9j
  det = (a0 - z) * (a1 - z) - b * c
  expected = np.array([(a1 - z) / det, (a0 - z) / det])
  for method in ("dense", "sequential", "scan"):
    out = resolvent_diagonal(np.array([a0, a1]), np.array([b]), np.array([c]), z, method=method)
    np.testing.assert_allclose(np.asarray(out), expected, rtol=1e-13)
    causal = resolvent_diagonal(np.array([a0, a1]), np.array([b]), np.array([c]), z,
                                method=method, causal=True)
    np.testing.assert_allclose(np.asarray(causal), [1 / (a0 - z), (a0 - z) / det], rtol=1e-13)


def test_complex64_accuracy_against_float64(random_tridiagonal):
  # Row 0 has z = i (tolerance 1e-5), row 1 z = 0.01i (1e-3): one compile per N.
  z = np.array([1j, 0.01j])
  tol = np.array([1e-5, 1e-3])
  for n in ACCURACY_N:
    rng = np.random.default_rng(1000 + n)
    a, b, c = random_tridiagonal(rng, (2,), n)
    b = c = np.ones_like(b)
    for causal in ((False, True) if n in (5, 4097, 16384) else (False,)):
      ref = _numpy_reference(a, b, c, z, causal)
      out = resolvent_diagonal(a.astype(np.float32), b.astype(np.float32), c.astype(np.float32),
                               z.astype(np.complex64), causal=causal)
      assert out.dtype == jnp.complex64
      assert bool(jnp.all(jnp.isfinite(out)))
      err = np.max(np.abs(np.asarray(out) - ref) / np.abs(ref), axis=-1)
      assert np.all(err <= tol), (n, causal, err)


def test_resolvent_bound_and_float32_default(random_tridiagonal):
  # Real symmetric H (b = c), Im z > 0: |G_ii| <= 1 / Im z, and Im G_ii > 0.
  a, b, _ = random_tridiagonal(np.random.default_rng(0), (4,), 300)
  g = resolvent_diagonal(jnp.asarray(a, jnp.float32), b, b, 0.5j)
  assert g.dtype == jnp.complex64
  assert float(jnp.max(jnp.abs(g))) <= 2.0 + 1e-5
  assert bool(jnp.all(jnp.imag(g) > 0))


@pytest.mark.parametrize("method", ("scan", "sequential"))
def test_causal_outputs_are_bit_identical_under_future_perturbation(method, random_tridiagonal):
  rng = np.random.default_rng(3)
  n = 100
  a, b, c = (jnp.asarray(x, jnp.float32) for x in random_tridiagonal(rng, (3,), n))
  f = jax.jit(lambda a, b, c: resolvent_diagonal(a, b, c, 1j, causal=True, method=method))
  base = np.asarray(f(a, b, c))
  for i in (0, 15, 16, 17, 50, 98):
    a2 = a.at[:, i + 1:].add(jnp.asarray(rng.normal(size=(3, n - i - 1)), jnp.float32))
    b2 = b.at[:, i:].mul(1.7)                        # b_j couples j and j+1 > i
    out = np.asarray(f(a2, b2, c))
    np.testing.assert_array_equal(out[:, :i + 1], base[:, :i + 1])
    assert not np.array_equal(out[:, i + 1:], base[:, i + 1:])
  # The full (non-causal) diagonal does depend on the next potential (the original's leak).
  g = resolvent_diagonal(a, b, c, 1j)
  g2 = resolvent_diagonal(a.at[:, 11].add(0.5), b, c, 1j)
  assert float(jnp.min(jnp.abs(g2[:, 10] - g[:, 10]))) > 1e-4


def test_heads_and_broadcasting(random_tridiagonal):
  rng = np.random.default_rng(5)
  a, b, c = random_tridiagonal(rng, (2, 4), 33)
  z = jnp.array([1j, 0.3j, 2j, 0.1 + 0.7j], jnp.complex64)
  g = resolvent_diagonal(jnp.asarray(a, jnp.float32), jnp.ones(32), jnp.ones(32), z)
  for h in range(4):
    gh = resolvent_diagonal(jnp.asarray(a[:, h], jnp.float32), jnp.ones((2, 32)),
                            jnp.ones((2, 32)), z[h], method="sequential")
    np.testing.assert_allclose(np.asarray(g[:, h]), np.asarray(gh), rtol=2e-6, atol=1e-7)


@pytest.mark.parametrize("kwargs, match", (
    (dict(z=0.0), "Im z > 0"),
    (dict(z=1.0 - 0.5j), "Im z > 0"),
    (dict(b=np.ones(6)), r"b.shape=\(6,\)"),
    (dict(c=np.ones((3, 7))), "leading axes"),
    (dict(z=np.ones(5) * 1j), r"z.shape=\(5,\)"),
    (dict(a=np.array([0.0, np.nan] * 4)), "a contains NaN"),
    (dict(b=np.array([np.inf] + [1.0] * 6)), "b contains NaN"),
    (dict(method="fft"), "method='fft'"),
    (dict(gradient="magic"), "gradient='magic'"),
    (dict(block_size=0), "block_size=0"),
    (dict(a=np.ones(8) * 1j), "a has dtype complex"),
))
def test_bad_input_gives_clear_error(kwargs, match):
  args = dict(a=np.zeros(8), b=np.ones(7), c=np.ones(7), z=1j)
  args.update(kwargs)
  call = {k: args.pop(k) for k in ("method", "gradient", "block_size") if k in args}
  with pytest.raises(ValueError, match=match):
    resolvent_diagonal(args["a"], args["b"], args["c"], args["z"], **call)
