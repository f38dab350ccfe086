"""bk.bench protocol: validity checks mark overflowing rows INVALID, reference rows are right, and
no result is written on a loaded machine."""
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bk import bench
from bk import bench_rows


def test_check_marks_nan_zero_and_wrong_outputs_invalid():
  ref = np.array([1.0 + 1j, 0.5 - 0.2j, -0.3j])
  assert bench_rows.check(ref.astype(np.complex64), ref)["valid"]
  nan = bench_rows.check(np.array([1 + 1j, np.nan, 0.1]), ref)
  assert not nan["valid"] and "non-finite" in nan["reason"]
  zero = bench_rows.check(np.array([1 + 1j, 0.0, 0.0]), ref)
  assert not zero["valid"] and "exactly 0" in zero["reason"]
  wrong = bench_rows.check(ref * 1.01, ref)
  assert not wrong["valid"] and wrong["rel_err"] == pytest.approx(0.01)


def _has_torch() -> bool:
  try:
    import torch  # noqa: F401  (the `[bench]` extra; CI installs only `[test]`)
    return True
  except ImportError:
    return False


def test_overflowing_originals_are_invalid_and_not_timed():
  # N = 1200, v ~ U(-3, 3): theta_N overflows complex128 (the original zeroes it: all-zero G) and
  # complex64 (the compiled theta/phi scan returns Inf/NaN); the continued fraction is fine.
  # The torch original is checked where the `[bench]` extra is installed; the rest always runs.
  names = (("original (torch c128)",) if _has_torch() else ()) + (
      "theta/phi lax.scan c64", "sequential")
  rows = bench.run_cell(1, 1200, False, names, 1, {}, bench._Refs(1, 1200), log=lambda s: None)
  by = {r["method"]: r for r in rows}
  if _has_torch():
    assert by["original (torch c128)"]["status"] == "INVALID"
    assert "exactly 0" in by["original (torch c128)"]["reason"]
    assert "seconds" not in by["original (torch c128)"]
  assert by["theta/phi lax.scan c64"]["status"] == "INVALID"
  assert "non-finite" in by["theta/phi lax.scan c64"]["reason"]
  assert "seconds" not in by["theta/phi lax.scan c64"]
  seq = by["sequential"]
  assert seq["status"] == "timed" and seq["rel_err"] < 1e-5
  assert seq["reps"] >= bench.MIN_REPS and seq["min_s"] <= seq["seconds"] <= seq["max_s"]


def test_theta_phi_scan_matches_float64_where_it_does_not_overflow(x64):
  a, off, _ = bench_rows.bk_inputs(3, 40, seed=1)
  ref = bench_rows.reference_float64(a, off, off, 1j)
  g64 = bench_rows.theta_phi_diagonal(jnp.asarray(a), off, off, 1j, jnp.complex64)
  assert g64.dtype == jnp.complex64
  assert bench_rows.check(g64, ref, 1e-4)["valid"]
  g128 = bench_rows.theta_phi_diagonal(jnp.asarray(a, jnp.float64), off, off, 1j, jnp.complex128)
  assert np.max(np.abs(np.asarray(g128) - ref) / np.abs(ref)) < 1e-10


def test_reference_gradient_matches_dense_jacobian():
  rng = np.random.default_rng(3)
  n = 9
  a, off, w = bench_rows.bk_inputs(1, n, seed=4)
  b = rng.uniform(0.2, 2, (1, n - 1))
  g = np.linalg.inv(np.diag(a[0] - 1j) + np.diag(b[0], 1) + np.diag(b[0], -1))
  g_hat = w[0, 0] + 1j * w[1, 0]
  exact = -np.real(np.einsum("j,ij,ji->i", np.conj(g_hat), g, g))   # dG_jj/da_i = -G_ij G_ji
  np.testing.assert_allclose(bench_rows.reference_grad_float64(a, b, b, 1j, w)[0], exact,
                             rtol=1e-10, atol=1e-12)


def test_lru_and_attention_rows_match_float64():
  x, lam, w = bench_rows.lru_inputs(3, 37)
  assert bench_rows.check(bench_rows.lru_fn(False)(x, lam, w),
                          bench_rows.lru_reference_float64(x, lam), 1e-5)["valid"]
  assert bench_rows.check(bench_rows.lru_fn(True)(x, lam, w),
                          bench_rows.lru_reference_grad_float64(x, lam, w), 1e-4)["valid"]
  q, k, v, w = bench_rows.attention_inputs(2, 21)
  rows = bench_rows.attention_check_rows(21)
  out, dq = bench_rows.attention_reference_float64(q, k, v, w, rows)
  assert bench_rows.check(np.asarray(bench_rows.attention_fn(False)(q, k, v, w))[0, rows],
                          out, 1e-3)["valid"]
  assert bench_rows.check(np.asarray(bench_rows.attention_fn(True)(q, k, v, w)[0])[0, rows],
                          dq, 1e-3)["valid"]


@pytest.fixture
def keep_x64_setting():
  """bench.main turns float64 on for its whole process; a test must not leave it on for the
  tests after it in the same worker (test_core asserts the float32 default)."""
  previous = jax.config.jax_enable_x64
  yield
  jax.config.update("jax_enable_x64", previous)


@pytest.mark.parametrize("load, writes", ((0.4, True), (3.0, False)))
def test_bench_refuses_to_write_when_loaded(tmp_path, monkeypatch, capsys, load, writes,
                                            keep_x64_setting):
  monkeypatch.setattr(os, "getloadavg", lambda: (load, 0.0, 0.0))
  # Other processes' CPU time (the pytest-xdist neighbour) is not this test's subject.
  monkeypatch.setattr(bench.benchmarking, "_cpu_jiffies", lambda: (0, 0))
  monkeypatch.setattr(bench.benchmarking, "pin_threads", lambda n: [0])  # keep this process' CPUs
  if _has_torch():
    import torch
    monkeypatch.setattr(torch, "set_num_threads", lambda n: None)
  monkeypatch.setattr(bench, "part_b", lambda args: {"part": "B", "rows": []})
  out = tmp_path / "r.json"
  if writes:
    bench.main(["--parts", "B", "--out", str(out)])
    assert json.loads(out.read_text())["B"] == {"part": "B", "rows": []}
  else:
    with pytest.raises(SystemExit) as e:
      bench.main(["--parts", "B", "--out", str(out), "--max-load", "1.5"])
    assert e.value.code == 2 and not out.exists()
    assert "refusing to write" in capsys.readouterr().err
