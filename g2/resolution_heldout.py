"""Held-out Rayleigh quotients of the low Ritz forms of `g2.resolution_spectrum` (issue 16,
stage 4).

A Ritz value is the minimum of a ratio of two Monte Carlo quadratic forms over the trial space,
taken on the sample that estimates them: it is biased low (the minimiser can exploit the sample's
noise), more so the larger the trial space. The Rayleigh quotient of the *same* form on an
independent sample (another seed, the same strata and sizes) has no such bias. This module builds
the largest trial space on two seeds, runs Rayleigh–Ritz on the first, and evaluates the lowest
Ritz forms on the second; optionally also on the sub-space without some profile scales (e.g. the
σ = t profiles), which shares the same points, so two trial spaces are compared on one sample pair.

  python -m g2.resolution_heldout [g2.resolution_spectrum flags] [--heldout_seed 1]
      [--drop_scales 1.0] [--degrees 2,3] [--out FILE]
"""
from __future__ import annotations

import dataclasses
import time

import jax
import numpy as np

from g2 import harmonic
from g2 import resolution_spectrum as rs

N_LOW = {2: 12, 3: 43}  # b2, b3 of M_t
N_PER = {2: 16, 3: 40}  # local trial forms per profile (`rs.local_trial_fn`)


def subspace_rows(s: rs.SpectrumSettings, k: int, n_glob: int, n_orb: int,
                  drop_scales=()) -> np.ndarray:
  """Rows of the full trial space [global | local orbit 0 | … | 11] without the local forms of the
  profiles whose scale is in drop_scales (profiles are power-major, `rs.local_trial_fn`)."""
  profiles = [(sc, p) for p in s.powers for sc in s.scales]
  keep = [q for q, (sc, _) in enumerate(profiles)
          if not any(np.isclose(sc, d) for d in drop_scales)]
  n_per, n_loc = N_PER[k], N_PER[k] * len(profiles)
  local = np.concatenate([q * n_per + np.arange(n_per) for q in keep]) if keep else np.zeros(0, int)
  return np.concatenate([np.arange(n_glob)] + [n_glob + o * n_loc + local for o in range(n_orb)])


def ritz_and_heldout(m0, d0, m1, d1, n: int) -> dict:
  """Rayleigh–Ritz (Jacobi-scaled, as `rs.hodge_spectrum`) on (m0, d0); the first n Ritz forms'
  Rayleigh quotients and mean squares on (m1, d1)."""
  diag = np.diag(m0)
  scale = np.where(diag > 0, 1.0 / np.sqrt(np.where(diag > 0, diag, 1.0)), 0.0)
  lam, vecs, rank = harmonic.rayleigh_ritz(m0 * np.outer(scale, scale),
                                           d0 * np.outer(scale, scale))
  c = scale[:, None] * vecs[:, :n]

  def quad(a):  # the quadratic form a on each Ritz vector
    return np.einsum("ai,ab,bi->i", c, a, c)
  norm1 = quad(m1)
  return {"rank": rank, "ritz": lam[:n], "heldout_quotient": quad(d1) / norm1,
          "heldout_mean_sq": norm1, "same_sample_quotient": quad(d0) / quad(m0)}


def heldout(s: rs.SpectrumSettings, heldout_seed: int, drop_scales=(), degrees=(2, 3),
            extra: int = 6, log=print) -> dict:
  """For the full trial space (and the one without drop_scales): the N_LOW[k] + extra lowest Ritz
  values on seed s.seed and the same forms' Rayleigh quotients on heldout_seed."""
  s.validate()
  cpu0 = time.process_time()
  asm = [rs.assemble(dataclasses.replace(s, seed=seed), degrees, log)
         for seed in (s.seed, heldout_seed)]
  spaces = {"all scales": ()}
  if drop_scales:
    spaces[f"without scales {list(drop_scales)}"] = tuple(drop_scales)
  out = {"settings": dataclasses.asdict(s), "heldout_seed": heldout_seed,
         "reference": [float(harmonic.rayleigh_ritz(*a["matrices"][0])[0][1]) for a in asm],
         "spaces": {}}
  for name, drop in spaces.items():
    out["spaces"][name] = {}
    for k in degrees:
      idx = subspace_rows(s, k, asm[0]["n_global"][k], asm[0]["n_orbits"], drop)
      (m0, d0), (m1, d1) = [tuple(x[np.ix_(idx, idx)] for x in a["matrices"][k]) for a in asm]
      r = ritz_and_heldout(m0, d0, m1, d1, N_LOW[k] + extra)
      out["spaces"][name][k] = {"trial_dim": int(len(idx)), "n_low": N_LOW[k],
                                **{key: (v if key == "rank" else [float(x) for x in v])
                                   for key, v in r.items()}}
      n = N_LOW[k]
      log(f"  {name}, k = {k} (dim {len(idx)}, rank {r['rank']}): Ritz {r['ritz'][0]:.3g}…"
          f"{r['ritz'][n - 1]:.3g} (next {r['ritz'][n]:.3g}); held-out "
          f"{r['heldout_quotient'][:n].min():.3g}…{r['heldout_quotient'][:n].max():.3g} "
          f"(next {r['heldout_quotient'][n]:.3g})")
  out["cpu_s"] = time.process_time() - cpu0
  return out


def main(argv=None) -> dict:
  """python -m g2.resolution_heldout [g2.resolution_spectrum flags] [--heldout_seed 1]
  [--drop_scales 1.0] [--degrees 2,3] [--out FILE]: held-out quotients of the low Ritz forms."""
  from g2 import resolution_learning as rl  # pylint: disable=g-import-not-at-top
  p = rl._OneLineParser(main.__doc__.splitlines()[0]).parser  # pylint: disable=protected-access
  rs.add_arguments(p)
  p.add_argument("--heldout_seed", type=int, default=1)
  p.add_argument("--drop_scales", default="")
  p.add_argument("--degrees", default="2,3")
  p.add_argument("--out", default="")
  args = p.parse_args(argv)
  s = rs.settings_from(args)
  try:
    drop = tuple(float(v) for v in args.drop_scales.split(",") if v)
    degrees = tuple(int(v) for v in args.degrees.split(","))
  except ValueError:
    rl.fail(f"--drop_scales={args.drop_scales!r} / --degrees={args.degrees!r} is invalid: allowed "
            "comma-separated numbers / a subset of 2,3")
  if not degrees or not set(degrees) <= {2, 3}:
    rl.fail(f"--degrees={args.degrees!r} is invalid: allowed a non-empty subset of 2,3")
  if args.heldout_seed == s.seed:
    rl.fail(f"--heldout_seed={args.heldout_seed} is invalid: allowed any seed other than --seed")
  with jax.enable_x64(True):
    out = heldout(s, args.heldout_seed, drop, degrees)
  return rl.write_out(out, args.out)


if __name__ == "__main__":
  main()
