"""Harmonic coordinates: a trial space of 3-forms built from the metric's own harmonic 1-forms.

On T⁷ (the cover of T⁷/Γ) every metric g has b1 = 7 harmonic 1-forms θ^i = dx^i + df_i, f_i the
minimiser of ∫ |dx^i + df|²_g vol_g (a scalar elliptic problem). They define harmonic
coordinates y = x + f(x), and y^*dx^I = θ^{i1}∧θ^{i2}∧θ^{i3} are closed 3-forms in the class
[dx^I]. For a flat metric G^*δ (a pull-back by a diffeomorphism G isotopic to the identity) the
θ^i are dG^i and these products are exactly harmonic; for a metric close to flat they are close to
harmonic. A trig trial space f(x) dx^I reaches such forms only through the products of G's
frequencies (sums of 2–3 frequencies, beyond the quadrature grid's Nyquist limit), so on a
learned metric that is largely a diffeomorphism pull-back its 7 harmonic Ritz values stall; the
products θ^{ijk} carry the non-linear structure with f_i alone.

Nothing here reads off an answer: f_i is computed from g_φ of the given φ only (neither a
planted map nor the problem's known answer enters), the fit uses its own quadrature points and
the 3-form Rayleigh–Ritz runs on others, and the forms are then tested by the same Rayleigh–Ritz
and gap rule as the trig space (`harmonic.gap_count`): a non-flat metric or a poorly resolved f
gives large Ritz values and "no gap". The Γ-average (`joyce.average_forms`) keeps the 7
invariant combinations on T⁷/Γ. The default estimator of the package (validation, `joyce`) stays
the trig space; this space is a named option used only through `ladders` (rows
"trig+harmonic_coordinates") and `python -m g2.harmonic_coordinates`. Caveat: added to many trig
forms on a coarse grid, the products θ^{ijk} (frequencies beyond the grid) can alias into
spurious near-zero Ritz values; keep few trig frequencies or a finer grid.
"""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from g2 import forms, g2form, harmonic


def _scalar_gradients(freqs: np.ndarray, x: jax.Array) -> jax.Array:
  """Gradients [2M, 7] of [cos k_1.x, sin k_1.x, cos k_2.x, ...] at x [7]."""
  k = jnp.asarray(freqs, x.dtype)
  arg = k @ x
  return jnp.stack([-jnp.sin(arg)[:, None] * k, jnp.cos(arg)[:, None] * k], 1).reshape(-1, 7)


def harmonic_one_forms(phi_fn: Callable, xs: np.ndarray, freqs: np.ndarray, chunk: int = 4096,
                       ridge: float = 1e-10) -> np.ndarray:
  """Coefficients c [2M, 7] of f_i = Σ_m c[m, i] s_m (s = trig functions of `freqs` [M, 7]) with
  θ^i = dx^i + df_i harmonic for g_φ in span(s): the normal equations of min ∫|dx^i + df|²_g vol_g
  on the points xs [P, 7] (A c = −B, A_mn = ∫⟨ds_m, ds_n⟩_g, B_mi = ∫⟨ds_m, dx^i⟩_g).
  Returns float64 coefficients."""
  freqs = np.asarray(freqs, np.float64).reshape(-1, 7)

  @jax.jit
  def sums(x):
    def point(p):
      _, g_inv, s = g2form.metric_data_from_phi(phi_fn(p))
      ds = _scalar_gradients(freqs, p)
      return s * ds @ g_inv, ds  # [2M, 7] each: <ds_m, .>_g vol_g and ds_m

    weighted, ds = jax.vmap(point)(x)
    return jnp.einsum("pmi,pni->mn", weighted, ds), jnp.sum(weighted, 0)

  tot_a = tot_b = 0.0
  for i in range(0, xs.shape[0], chunk):
    a, b = sums(jnp.asarray(xs[i:i + chunk]))
    tot_a = tot_a + np.asarray(a, np.float64)
    tot_b = tot_b + np.asarray(b, np.float64)
  tot_a = 0.5 * (tot_a + tot_a.T)
  tot_a += ridge * np.trace(tot_a) / len(tot_a) * np.eye(len(tot_a))
  return np.linalg.solve(tot_a, -tot_b)


def coordinate_jacobian(freqs: np.ndarray, coef: np.ndarray) -> Callable:
  """x [7] -> J [7, 7], J[i, a] = ∂y^i/∂x^a of the harmonic coordinates y = x + f(x)."""
  freqs = np.asarray(freqs, np.float64).reshape(-1, 7)

  def jac(x):
    ds = _scalar_gradients(freqs, x)  # [2M, 7]
    return jnp.eye(7, dtype=x.dtype) + jnp.asarray(coef.T, x.dtype) @ ds
  return jac


def pullback_trial_fn(freqs: np.ndarray, coef: np.ndarray, triples=None) -> Callable:
  """Trial 3-forms y^*dx^I = θ^{i1}∧θ^{i2}∧θ^{i3} (closed) for the index triples I (default all
  35): x [7] -> [len(triples), 35]; component abc is the minor det J[I, abc]."""
  jac = coordinate_jacobian(freqs, coef)
  cols = forms.combinations(3)  # [35, 3]
  rows = cols if triples is None else np.asarray([sorted(t) for t in triples], np.int64)

  def h_fn(x):
    j = jac(x)
    sub = j[rows[:, None, :, None], cols[None, :, None, :]]  # [n, 35, 3, 3]
    return jnp.linalg.det(sub)
  return h_fn


def combined_trial_fn(fns) -> Callable:
  """Row-wise concatenation of trial form fields x [7] -> [n_j, C(7,k)]."""
  return lambda x: jnp.concatenate([fn(x) for fn in fns], 0)


def fit_harmonic_coordinates(phi_fn: Callable, fit_grid_n: int, n_frequencies: int,
                             chunk: int = 4096) -> tuple[np.ndarray, np.ndarray, dict]:
  """Frequencies (the n_frequencies of largest Fourier power of g_φ on the fit_grid_n⁷ grid) and
  the harmonic-coordinate coefficients fitted on that grid. Returns (freqs, coef, info)."""
  freqs, power = harmonic.metric_frequencies(phi_fn, fit_grid_n, chunk)
  freqs = freqs[:n_frequencies]
  coef = harmonic_one_forms(phi_fn, harmonic.grid_points(fit_grid_n), freqs, chunk)
  info = {"fit_grid": f"{fit_grid_n}^7", "n_frequencies": int(len(freqs)),
          "captured_metric_power": float(np.sum(power[:n_frequencies]) / max(np.sum(power),
                                                                              1e-300))}
  return freqs, coef, info


def ladders(phi_fn: Callable, grid_n: int, sizes, *, fit_grid_n: int, n_fit_frequencies: int,
            chunk: int = 729, gap_ratio: float = 10.0, symmetrise: Callable | None = None,
            invariant_triples=None, degree: int = 3) -> dict:
  """3-form Betti estimates on the grid_n⁷ grid with and without the harmonic-coordinate forms.

  One assembly of [trig forms of the first max(sizes) metric-ranked frequencies (the package's
  default space, `harmonic.trial_space_ladders`)] + [the 35 forms θ^I], each Γ-averaged by
  `symmetrise` (on T⁷/Γ pass invariant_triples = the 7 terms of φ0: the other 28 θ^I average to 0
  up to the fit's round-off); every rung m is evaluated on the trig block alone ("trig") and with θ^I appended
  ("trig+harmonic_coordinates"). λ_ref as in trial_space_ladders. The harmonic coordinates are
  fitted on the fit_grid_n⁷ grid (other points than the Rayleigh–Ritz grid when the sizes differ).
  """
  if degree != 3:
    raise ValueError(f"degree={degree!r} is invalid: allowed 3 (θ^{{ijk}} are 3-forms)")
  sizes = sorted({int(s) for s in sizes})
  xs = harmonic.grid_points(grid_n)
  freqs, _ = harmonic.metric_frequencies(phi_fn, grid_n)
  sizes = sorted({min(s, len(freqs)) for s in sizes})
  fit_freqs, coef, info = fit_harmonic_coordinates(phi_fn, fit_grid_n, n_fit_frequencies)
  triples = None if invariant_triples is None else tuple(invariant_triples)
  scalar_freqs = np.unique(np.concatenate([harmonic.axis_frequencies(1, 7), freqs[:sizes[-1]]]),
                           axis=0)
  fns = {0: harmonic.trig_trial_fn(0, scalar_freqs)[0],
         degree: combined_trial_fn([harmonic.trig_trial_fn(degree, freqs[:sizes[-1]])[0],
                                    pullback_trial_fn(fit_freqs, coef, triples)])}
  if symmetrise is not None:
    fns = {k: symmetrise(k, fn) for k, fn in fns.items()}
  mats = harmonic.accumulate_form_matrices(phi_fn, fns, xs, chunk)
  lam0, _, _ = harmonic.rayleigh_ritz(*mats[0])
  reference = float(lam0[1]) if lam0.size > 1 else None
  eps = float(np.finfo(xs.dtype).eps)
  nk = forms.num_components(degree)
  m_all, d_all = mats[degree]
  n_trig = (1 + 2 * sizes[-1]) * nk
  pull = np.arange(n_trig, m_all.shape[0])
  rows = []
  for size in sizes:
    trig = np.arange((1 + 2 * size) * nk)
    for space, idx in (("trig", trig), ("trig+harmonic_coordinates", np.r_[trig, pull])):
      lam, _, rank = harmonic.rayleigh_ritz(m_all[np.ix_(idx, idx)], d_all[np.ix_(idx, idx)])
      floor = harmonic.roundoff_floor(lam, eps, min(chunk, len(xs)))
      gap = harmonic.gap_count(lam, gap_ratio, floor, reference)
      rows.append({"trial_space": space, "n_frequencies": size, "trial_dim": int(len(idx)),
                   "rank": rank, "betti": gap["count"], "gap_ratio": gap["gap_ratio"],
                   "floor": floor, "lowest_ritz": [float(v) for v in lam[:10]]})
  return {"reference": reference, "grid": f"{grid_n}^7", "harmonic_coordinates": info,
          "criterion": gap["criterion"], "rows": rows}


def restore_phi(config, workdir: str) -> tuple[Callable, Callable, int]:
  """(learned φ, background φ̄, step) of the latest checkpoint of a g2 run in `workdir`."""
  from common import checkpoint as checkpoint_lib  # pylint: disable=g-import-not-at-top
  from common import loop  # pylint: disable=g-import-not-at-top
  from g2 import train  # pylint: disable=g-import-not-at-top
  learner = train.Learner(config)
  ckpt = checkpoint_lib.Checkpointer(f"{workdir}/checkpoints",
                                     save_every=config.train.checkpoint_every)
  state, _, step = loop.restore_or_init(ckpt, learner.init_state, mesh=learner.mesh)
  if step == 0:
    raise SystemExit(f"--workdir={workdir!r} is invalid: no checkpoint found (allowed: the workdir "
                     "of a finished or interrupted g2 run)")
  return learner.problem.phi_fn(state.params["phi"]), learner.problem.background_phi_fn(), step


def main(argv=None) -> dict:
  """python -m g2.harmonic_coordinates --workdir RUN [--variant orbifold_quick] [--grid_n 3]
  [--sizes 0,2,4] [--fit_grid_n 5] [--fit_frequencies 100,200] [--out FILE]: b3 of T⁷/Γ on a
  restored run's learned metric (and its background), trig space vs trig + harmonic coordinates."""
  import argparse  # pylint: disable=g-import-not-at-top
  import json  # pylint: disable=g-import-not-at-top
  import resource  # pylint: disable=g-import-not-at-top
  import time  # pylint: disable=g-import-not-at-top
  from configs import g2 as g2_config  # pylint: disable=g-import-not-at-top
  from g2 import joyce  # pylint: disable=g-import-not-at-top
  parser = argparse.ArgumentParser(description=main.__doc__.splitlines()[0])
  parser.add_argument("--workdir", required=True)
  parser.add_argument("--variant", default="orbifold_quick")
  parser.add_argument("--grid_n", type=int, default=3)
  parser.add_argument("--sizes", default="0,2,4")
  parser.add_argument("--fit_grid_n", type=int, default=5)
  parser.add_argument("--fit_frequencies", default="200")
  parser.add_argument("--metrics", default="learned,background")
  parser.add_argument("--out", default="")
  args = parser.parse_args(argv)
  config = g2_config.get_config(args.variant)
  if config.problem.name != "orbifold":
    raise SystemExit(f"--variant={args.variant!r} is invalid: allowed an orbifold variant")
  learned, background, step = restore_phi(config, args.workdir)
  fns = {"learned": learned, "background": background}
  sizes = tuple(int(s) for s in args.sizes.split(","))
  report = {"workdir": args.workdir, "variant": args.variant, "step": step, "runs": []}
  for name in args.metrics.split(","):
    for n_fit in (int(s) for s in args.fit_frequencies.split(",")):
      c0 = time.process_time()
      out = ladders(fns[name], args.grid_n, sizes, fit_grid_n=args.fit_grid_n,
                    n_fit_frequencies=n_fit, symmetrise=joyce.average_forms,
                    invariant_triples=joyce.invariant_constant_forms(3))
      out.update(metric=name, cpu_s=time.process_time() - c0, loadavg=open("/proc/loadavg").read(
          ).split()[:3], max_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
      report["runs"].append(out)
      for r in out["rows"]:
        print(f"{name:<10} fit {n_fit:>4} {r['trial_space']:<26} m={r['n_frequencies']} "
              f"rank {r['rank']:>3} b3 {str(r['betti']):>4} ritz[0:8] "
              + " ".join(f"{v:.4g}" for v in r["lowest_ritz"][:8]))
      print(f"  λ_ref {out['reference']:.4f}, {out['cpu_s']:.0f} CPU-s, load {out['loadavg']}")
  if args.out:
    with open(args.out, "w") as f:
      json.dump(report, f, indent=1)
  return report


if __name__ == "__main__":
  main()
