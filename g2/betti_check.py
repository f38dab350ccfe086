"""Betti numbers of T^7 on curved metrics: the trial-space ladder of `harmonic` on known cases.

  python -m g2.betti_check [--grid_n 3] [--sizes 0,3,6] [--out g2_betti_check.json]

b_k(T^7) = C(7, k) for every metric (b2 = 21, b3 = 35), so each metric below is a test of the
estimator away from flatness: conformally flat e^{2f} delta (phi = e^{3f} phi0, torsion tau1 = df;
the issue's f and a stronger one), a generic frame A(x)^T A(x) (phi = A^* phi0), and the flat but
non-constant pull-back F^* delta of the default T^7 problem's diffeomorphism. For each, the
Ritz values around b_k are printed per rung of the ladder (their convergence) with the estimate.
"""
from __future__ import annotations

import argparse
import json
import time

import jax
import jax.numpy as jnp
import numpy as np

from g2 import g2form, harmonic


def conformal(amp: float, terms) -> callable:
  """phi = e^{3f} phi0 with f = amp * sum c cos(k.x + t): metric e^{2f} delta (not flat)."""
  def phi(x):
    f = amp * sum(c * jnp.cos(x @ jnp.asarray(k, x.dtype) + t) for c, k, t in terms)
    return jnp.exp(3.0 * f) * g2form.phi0(x.dtype)
  return phi


def issue_conformal(x):
  """The issue's example f = 0.1 (sin x1 cos x2 + 0.6 cos(x3 + x4)); the previous widest-gap
  estimator returned b2 = 6 here."""
  f = 0.1 * (jnp.sin(x[0]) * jnp.cos(x[1]) + 0.6 * jnp.cos(x[2] + x[3]))
  return jnp.exp(3.0 * f) * g2form.phi0(x.dtype)


def general_frame(amp: float = 0.05, seed: int = 3) -> callable:
  """phi = A(x)^* phi0, A = I + amp N sin(x1 + x6 - x4) (N Gaussian): generic metric A^T A."""
  n = np.random.default_rng(seed).normal(size=(7, 7))

  def phi(x):
    a = jnp.eye(7, dtype=x.dtype) + amp * jnp.asarray(n, x.dtype) * jnp.sin(x[0] + x[5] - x[3])
    return g2form.pullback(g2form.phi0(x.dtype), a)
  return phi


def pullback_flat() -> callable:
  """F^* phi0 of the default T^7 problem (flat metric F^* delta, not constant in x)."""
  from configs import g2 as g2_config  # pylint: disable=g-import-not-at-top
  from g2 import problems  # pylint: disable=g-import-not-at-top
  return problems.TorusProblem(g2_config.get_config("default")).exact_phi_fn()


METRICS = {
    "issue_conformal": lambda: issue_conformal,
    "conformal_0.2": lambda: conformal(0.2, [(1.0, [0, 1, 0, 0, 0, 1, 0], 0.3),
                                             (0.7, [1, 0, 0, -1, 0, 0, 0], 1.1)]),
    "general_frame_0.05": lambda: general_frame(0.05),
    "general_frame_0.1": lambda: general_frame(0.1),
    "pullback_flat": pullback_flat,
}
EXPECTED = {2: 21, 3: 35}


def check(name: str, grid_n: int, sizes, chunk: int = 729, gap_ratio: float = 10.0) -> dict:
  phi_fn = METRICS[name]()
  t0, c0 = time.time(), time.process_time()
  freqs, power = harmonic.metric_frequencies(phi_fn, grid_n)
  out = harmonic.trial_space_ladders(phi_fn, harmonic.grid_points(grid_n), freqs, sizes, (2, 3),
                                     chunk=chunk, gap_ratio=gap_ratio)
  rows = {}
  for k, b in EXPECTED.items():
    rows[k] = [{"n_frequencies": r["n_frequencies"], "trial_dim": r["trial_dim"],
                "betti": r["betti"], "ritz_b_minus_1": float(r["eigenvalues"][b - 1]),
                "ritz_b": float(r["eigenvalues"][b]) if r["eigenvalues"].size > b else None}
               for r in out[k]]
  return {"metric": name, "grid": f"{grid_n}^7", "reference": out["reference"],
          "top_metric_power": float(power[0]), "ladders": rows,
          "wall_s": time.time() - t0, "cpu_s": time.process_time() - c0}


def main(argv=None) -> list[dict]:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--grid_n", type=int, default=3, help="quadrature grid n^7")
  parser.add_argument("--sizes", type=str, default="0,3,6", help="trial-space ladder (frequencies)")
  parser.add_argument("--metrics", type=str, default=",".join(METRICS), help="which metrics")
  parser.add_argument("--out", type=str, default="g2_betti_check.json", help="JSON output path")
  args = parser.parse_args(argv)
  sizes = tuple(int(s) for s in args.sizes.split(","))
  names = args.metrics.split(",")
  unknown = [n for n in names if n not in METRICS]
  if unknown:
    raise SystemExit(f"--metrics={args.metrics!r} is invalid: allowed names from {list(METRICS)}")
  results = []
  print(f"{'metric':<20} {'k':>2} {'freqs':>5} {'dim':>5} {'betti':>6} {'ritz[b-1]':>10} "
        f"{'ritz[b]':>9}")
  for name in names:
    res = check(name, args.grid_n, sizes)
    results.append(res)
    for k, rows in res["ladders"].items():
      for r in rows:
        print(f"{name:<20} {k:>2} {r['n_frequencies']:>5} {r['trial_dim']:>5} "
              f"{str(r['betti']):>6} {r['ritz_b_minus_1']:>10.3e} {r['ritz_b'] or 0:>9.3e}")
    print(f"{name}: reference {res['reference']:.4f}, {res['cpu_s']:.0f} CPU-s")
  with open(args.out, "w") as f:
    json.dump({"jax_enable_x64": bool(jax.config.jax_enable_x64), "results": results}, f,
              indent=2)
  print(f"wrote {args.out}")
  return results


if __name__ == "__main__":
  main()
