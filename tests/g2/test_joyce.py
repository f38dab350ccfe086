"""T⁷/Γ (Joyce's first example): group, φ0-invariance, fixed sets, 12 singular T³, Betti numbers —
all derived from the three generators."""
import numpy as np

from g2 import g2form
from g2 import joyce


def test_group_is_z2_cubed_and_preserves_phi0():
  elems = joyce.group()
  assert len(elems) == 8
  for g in elems:
    assert (g @ g).signs == joyce.IDENTITY.signs and (g @ g).shift == joyce.IDENTITY.shift  # order 2
    assert joyce.preserves_phi0(g)
  for g in elems:
    for h in elems:
      assert (g @ h).signs == (h @ g).signs and (g @ h).shift == (h @ g).shift  # abelian
  # A sign pattern that does not preserve φ0 is caught (the check can fail).
  bad = joyce._affine("δ", (1, 1, -1, 1, 1, 1, 1), (0,) * 7)
  assert not joyce.preserves_phi0(bad)


def test_affine_maps_act_on_points_as_written():
  x = np.array([0.1, 0.2, 0.3, 0.4, 0.05, 0.15, 0.35])
  np.testing.assert_allclose(joyce.BETA.apply(x), np.mod([0.1, -0.2, -0.3, 0.4, 0.05, 0.5 - 0.15, -0.35], 1))
  np.testing.assert_allclose(joyce.GAMMA.apply(x), np.mod([-0.1, 0.2, -0.3, 0.4, 0.45, 0.15, 0.15], 1))
  for g in joyce.group():
    for comp in joyce.fixed_components(g):  # a sampled point of each fixed torus is fixed
      p = np.random.default_rng(0).uniform(size=7)
      for i, v in comp.values:
        p[i] = float(v)
      np.testing.assert_allclose(np.mod(g.apply(p) - p + 0.5, 1) - 0.5, 0, atol=1e-12)


def test_fixed_sets_and_the_twelve_singular_tori():
  sing = joyce.singular_set()
  # The products αβ, αγ, βγ, αβγ act freely (each has a +1 coordinate with a ½ shift).
  assert len(sing["free_elements"]) == 4 and all(len(n) >= 2 for n in sing["free_elements"])
  assert sing["components_in_T7"] == 48  # 16 T³ fixed by each of α, β, γ
  orbits = sing["orbits"]
  assert len(orbits) == 12
  for o in orbits:
    assert o["representative"].dimension == 3 and o["size"] == 4
    assert len(o["stabiliser"]) == 2  # {1, g}: a neighbourhood T³ × ℂ²/{±1}
  assert sorted(o["representative"].element for o in orbits) == sorted(["α"] * 4 + ["β"] * 4 + ["γ"] * 4)
  assert joyce.fixed_sets_disjoint()


def test_betti_numbers_of_orbifold_and_resolution():
  b = joyce.betti_numbers()
  assert b["orbifold"] == {"b2": 0, "b3": 7}
  assert b["resolution"] == {"b2": 12, "b3": 43}
  # The 7 invariant 3-forms are exactly the 7 terms of φ0.
  terms = {tuple(sorted(t)) for t in joyce.invariant_constant_forms(3)}
  phi0 = np.asarray(g2form.phi0())
  from g2 import forms
  support = {tuple(int(i) for i in forms.combinations(3)[k]) for k in np.flatnonzero(phi0)}
  assert terms == support


def test_gamma_average_is_an_invariant_projection():
  import jax.numpy as jnp
  from g2 import harmonic
  h_fn, _ = harmonic.trig_trial_fn(3, np.asarray([[1, 0, 0, 0, 0, 0, 0], [0, 1, 0, 1, 0, 0, 0],
                                                  [0, 0, 0, 0, 1, 0, 2]]))
  avg = joyce.average_forms(3, h_fn)
  xs = jnp.asarray(np.random.default_rng(1).uniform(0, 2 * np.pi, (5, 7)))
  for g in joyce.group():
    pulled = joyce.pullback_by(g, 3, avg)
    for x in xs:
      np.testing.assert_allclose(np.asarray(pulled(x)), np.asarray(avg(x)), atol=1e-5)
  # Not the identity: the raw trial forms are not invariant, and averaging twice changes nothing.
  moved = max(float(jnp.max(jnp.abs(joyce.pullback_by(g, 3, h_fn)(xs[0]) - h_fn(xs[0]))))
              for g in joyce.group())
  assert moved > 0.1
  np.testing.assert_allclose(np.asarray(joyce.average_forms(3, avg)(xs[0])),
                             np.asarray(avg(xs[0])), atol=1e-5)
  # The invariant conformal factor is not constant (the curved metric test below is not flat).
  f = joyce.invariant_function(joyce._f0)
  vals = np.asarray([float(f(x)) for x in xs])
  assert np.ptp(vals) > 0.1


def test_orbifold_betti_numbers_on_a_curved_invariant_metric():
  """T⁷/Γ: b2 = 0, b3 = 7 from the spectral estimator on Γ-averaged trial forms, for a conformally
  flat, non-flat Γ-invariant metric (on T⁷ itself the same ladder gives 21 / 35; flat T⁷/Γ is in
  the README's run of `python -m g2.joyce`)."""
  res = joyce.orbifold_betti(joyce.invariant_conformal_phi(0.2), grid_n=3, sizes=(0, 2))
  two, three = res["ladders"][2], res["ladders"][3]
  assert two[0]["rank"] == 0  # no constant 2-form is Γ-invariant
  assert two[1]["rank"] > 0 and two[1]["betti"] == 0
  assert [r["betti"] for r in three] == [7, 7]
  # Converging: the 7 harmonic Ritz values fall as the space grows, the 8th stays O(1).
  assert max(three[1]["lowest_ritz"][:7]) < max(three[0]["lowest_ritz"][:7])
  assert three[1]["lowest_ritz"][7] > 1.0
