"""bk.bench helpers: the NumPy float64 reference, flop counts, speedup summary, CLI errors."""
import numpy as np
import pytest

from bk import bench


def test_reference_float64_matches_dense_inverse():
  rng = np.random.default_rng(0)
  n = 9
  a = rng.uniform(-5, 1, (2, n))
  b, c = rng.uniform(0.2, 2, (2, n - 1)), rng.uniform(0.2, 2, (2, n - 1))
  z = 0.3 + 0.4j
  dense = np.stack([np.diag(np.linalg.inv(np.diag(a[i] - z) + np.diag(b[i], 1) +
                                          np.diag(c[i], -1))) for i in range(2)])
  np.testing.assert_allclose(bench.reference_float64(a, b, c, z), dense, rtol=1e-12)
  causal = np.array([1 / np.linalg.inv(np.diag(a[0, :i + 1] - z) + np.diag(b[0, :i], 1) +
                                       np.diag(c[0, :i], -1))[i, i] for i in range(n)])
  np.testing.assert_allclose(1 / bench.reference_float64(a, b, c, z, causal=True)[0], causal,
                             rtol=1e-12)


def test_analytic_flops_and_speedup_summary():
  # Sequential: 11 flops per position and scan (2 scans) + 13 for the combination.
  assert bench.analytic_flops("sequential", 1, 100) == 11 * 2 * 100 + 13 * 100
  assert bench.analytic_flops("dense", 2, 10) == 8 * 2 * 1000
  rows = [{"batch_heads": 8, "n": 2048, "method": m, "mode": "fwd", "seconds": s}
          for m, s in (("scan", 0.002), ("original (torch c128)", 0.1))]
  bench._add_speedups(rows)
  assert rows[0]["speedup_vs_original"] == pytest.approx(50.0)
  summary = bench._summary_a(rows)
  assert summary["speedup_bh8_n2048_fwd"] == pytest.approx(50.0)
  assert summary["target_met_bh8_n2048_fwd"] is True


def test_parse_args_rejects_unknown_part():
  assert bench.parse_args(["--parts", "a,c"]).parts == ["A", "C"]
  with pytest.raises(SystemExit):
    bench.parse_args(["--parts", "A,E"])
