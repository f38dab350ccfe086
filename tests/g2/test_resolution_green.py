"""The Green's-function correction of Joyce's glued φ_t (`g2.resolution_green`, float64): the
periodic Green's function, closedness and Γ-invariance of φ_t^G, and its torsion far below φ_t's."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from g2 import g2form
from g2 import joyce
from g2 import resolution_green as rg

pytestmark = pytest.mark.usefixtures("x64")


def test_fixed_tori_of_each_generator_form_the_half_lattice():
  for _, _, us in rg.generator_charts():
    grid = np.round(us / np.pi)
    np.testing.assert_allclose(us, grid * np.pi, atol=1e-12)      # u ∈ {0, π}⁴ ...
    assert len({tuple(r) for r in grid.astype(int) % 2}) == 16    # ... all 16 of them


def test_green_function_has_constant_laplacian_and_the_flat_singularity():
  rng = np.random.default_rng(0)
  u = jnp.asarray(rng.uniform(0.3, 2.8, (5, 4)))
  for alpha in (0.1, 0.15):
    g = rg.green(alpha)
    lap = jax.jit(jax.vmap(lambda y: jnp.trace(jax.hessian(g)(y))))(u)
    np.testing.assert_allclose(np.asarray(lap), 4 / np.pi ** 2, atol=1e-7)  # uniform background
  # The Ewald split point only moves a constant; πℤ⁴-periodic.
  diff = jax.vmap(rg.green(0.1))(u) - jax.vmap(rg.green(0.15))(u)
  np.testing.assert_allclose(np.asarray(diff), float(diff[0]), atol=1e-8)
  assert abs(float(diff[0])) > 1e-3
  np.testing.assert_allclose(np.asarray(jax.vmap(rg.green(0.15))(u + jnp.pi * jnp.asarray([1, 0, -1, 2.]))),
                             np.asarray(jax.vmap(rg.green(0.15))(u)), atol=1e-9)
  # 𝒢 − 1/|u|² is smooth at the point: the same value along different directions and radii.
  reg = rg.green(0.15, subtract=lambda v: jnp.ones_like(v))
  vals = [float(reg(jnp.asarray(r * d))) for r in (1e-3, 1e-2) for d in
          (np.asarray([1.0, 0, 0, 0]), np.asarray([0, 1.0, 1, 0]) / np.sqrt(2))]
  np.testing.assert_allclose(vals, vals[0], atol=1e-4)


def test_green_corrected_form_is_closed_invariant_and_nearly_torsion_free():
  from g2 import resolution_learning as rl
  t = 0.16
  phi = rg.green_phi()
  learner = rl.ResolutionLearner(t)
  x, _ = learner.sample(np.random.default_rng(4), 6)
  signs, shifts, comp = joyce._group_arrays(3)  # pylint: disable=protected-access
  gx = (x[None] * signs[:, None] + shifts[:, None]).reshape(-1, 7)
  f = jax.jit(jax.vmap(lambda y: phi(y, jnp.asarray(t))))
  pulled = np.asarray(f(jnp.asarray(gx))).reshape(8, len(x), 35) * comp[:, None, :]
  np.testing.assert_allclose(pulled, np.broadcast_to(pulled[:1], pulled.shape), atol=1e-12)
  base = np.asarray(jax.vmap(lambda y: rg.res.glued_phi(0.35, 0.7)(y, jnp.asarray(t)))(jnp.asarray(x)))
  assert np.abs(pulled[0] - base).max() > 1e-5                 # the correction is not zero
  # Torsion of both forms at annulus points (where φ_t's torsion lives), one compilation.
  cs = rg.res.charts()
  r = np.linspace(0.4, 0.68, 8)
  xs = jnp.asarray(np.stack([rg.res.GluedForm(t).chart_point(cs[(7 * k) % 48], [1, 2, 3 + k],
                                                              r[k] * np.asarray([0.5, -0.5, 0.5, 0.5]))
                             for k in range(8)]))
  both = jax.jit(jax.vmap(lambda y: (g2form.torsion(lambda z: rg.res.glued_phi(0.35, 0.7)(z, t))(y),
                                     g2form.torsion(lambda z: phi(z, t))(y))))
  glued, green = both(xs)
  assert np.max(np.asarray(glued["dpsi_sq"])) > 1e-2             # φ_t: |dψ_t|² up to 0.6 here
  assert np.max(np.asarray(green["dpsi_sq"])) < 1e-4 * np.max(np.asarray(glued["dpsi_sq"]))  # 3e-6
  assert np.max(np.asarray(green["dphi_sq"])) < 1e-24           # closed


@pytest.mark.parametrize("argv, message", [
    (["--ts", "0.1,-1"], "--ts='0.1,-1' is invalid"),
    (["--points", "1"], "--points=1 is invalid"),
    (["--alpha", "0.5"], "--alpha=0.5 is invalid"),
])
def test_bad_input_is_one_line_and_exit_2(argv, message, capsys):
  with pytest.raises(SystemExit) as e:
    rg.main(argv)
  assert e.value.code == 2
  err = capsys.readouterr().err.strip()
  assert len(err.splitlines()) == 1 and message in err, err
