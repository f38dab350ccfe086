"""Exterior algebra in components: layout, wedge, interior, Hodge star, d (float64)."""
import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from g2 import forms

pytestmark = pytest.mark.usefixtures("x64")


@pytest.fixture(scope="module")
def levi_civita():
  e = np.zeros((7,) * 7)
  for perm in itertools.permutations(range(7)):
    e[perm] = forms._sort_sign(perm)[0]
  return e


def _spd(rng):
  m = rng.normal(size=(7, 7))
  return m @ m.T + 3 * np.eye(7)


def test_layout_counts_and_lexicographic_order():
  assert [forms.num_components(k) for k in range(8)] == [1, 7, 21, 35, 35, 21, 7, 1]
  c3 = forms.combinations(3)
  assert c3[0].tolist() == [0, 1, 2] and c3[1].tolist() == [0, 1, 3] and c3[-1].tolist() == [4, 5, 6]
  assert forms.component_index([0, 3, 4]) == [tuple(c) for c in c3.tolist()].index((0, 3, 4))


@pytest.mark.parametrize("k", [1, 2, 3, 4, 5])
def test_to_tensor_is_antisymmetric_and_round_trips(k, rng):
  w = rng.normal(size=(2, forms.num_components(k)))
  t = np.asarray(forms.to_tensor(w, k))
  assert t.shape == (2,) + (7,) * k
  if k >= 2:
    np.testing.assert_array_equal(t, -np.swapaxes(t, 1, 2))
  np.testing.assert_array_equal(forms.from_tensor(t, k), w)


def test_bad_inputs_name_the_field():
  with pytest.raises(ValueError, match="k=8"):
    forms.to_tensor(np.zeros(1), 8)
  with pytest.raises(ValueError, match=r"comps.shape=\(34,\)"):
    forms.to_tensor(np.zeros(34), 3)
  with pytest.raises(ValueError, match="q=5"):
    forms.wedge(np.zeros(35), 3, np.zeros(21), 5)


def test_wedge_matches_alternation_formula(rng):
  # (a∧b) = ((p+q)!/(p!q!)) Alt(a⊗b), checked densely for p = 2, q = 3.
  a, b = rng.normal(size=21), rng.normal(size=35)
  ta, tb = np.asarray(forms.to_tensor(a, 2)), np.asarray(forms.to_tensor(b, 3))
  prod = np.einsum("ij,klm->ijklm", ta, tb)
  alt = np.zeros_like(prod)
  for perm in itertools.permutations(range(5)):
    alt += forms._sort_sign(perm)[0] * np.transpose(prod, perm)
  alt *= 1.0 / (math.factorial(2) * math.factorial(3))
  np.testing.assert_allclose(forms.wedge(a, 2, b, 3), forms.from_tensor(alt, 5), atol=1e-12)


def test_wedge_graded_commutativity_and_associativity(rng):
  a, b, c = rng.normal(size=7), rng.normal(size=21), rng.normal(size=35)
  np.testing.assert_allclose(forms.wedge(a, 1, b, 2), forms.wedge(b, 2, a, 1), atol=1e-12)
  np.testing.assert_allclose(forms.wedge(a, 1, c, 3), -forms.wedge(c, 3, a, 1), atol=1e-12)
  np.testing.assert_allclose(forms.wedge(forms.wedge(a, 1, b, 2), 3, b, 2),
                             forms.wedge(a, 1, forms.wedge(b, 2, b, 2), 4), atol=1e-12)
  np.testing.assert_allclose(forms.wedge(a, 1, a, 1), 0.0, atol=1e-14)


def test_interior_is_a_graded_derivation(rng):
  v, a, b = rng.normal(size=7), rng.normal(size=7), rng.normal(size=21)
  lhs = forms.interior(v, forms.wedge(a, 1, b, 2), 3)
  rhs = (v @ a) * b - forms.wedge(a, 1, forms.interior(v, b, 2), 1)
  np.testing.assert_allclose(lhs, rhs, atol=1e-12)


@pytest.mark.parametrize("k", range(5))
def test_hodge_star_matches_dense_levi_civita_and_squares_to_one(k, rng, levi_civita):
  g = _spd(rng)
  g_inv = np.linalg.inv(g)
  w = rng.normal(size=forms.num_components(k))
  t = np.asarray(forms.to_tensor(w, k))
  raised = t
  for ax in range(k):
    raised = np.moveaxis(np.tensordot(g_inv, raised, axes=([1], [ax])), 0, ax)
  dense = np.tensordot(raised, levi_civita, axes=(list(range(k)), list(range(k))))
  dense *= np.sqrt(np.linalg.det(g)) / math.factorial(k)
  star = forms.hodge_star(w, k, g)
  np.testing.assert_allclose(star, _dense_components(dense, 7 - k), rtol=1e-11, atol=1e-11)
  np.testing.assert_allclose(forms.hodge_star(star, 7 - k, g), w, atol=1e-11)  # ⋆⋆ = 1 in 7-d
  np.testing.assert_allclose(forms.norm_sq(w, k, g), np.sum(t * raised) / math.factorial(k),
                             rtol=1e-11)
  # w ∧ ⋆w = |w|² vol_g (and for the (7-k)-form ⋆w, exercising the degrees 3..7).
  vol = forms.wedge(w, k, star, 7 - k)[0] / np.sqrt(np.linalg.det(g))
  np.testing.assert_allclose(vol, forms.norm_sq(w, k, g), rtol=1e-10)
  np.testing.assert_allclose(forms.norm_sq(star, 7 - k, g), forms.norm_sq(w, k, g), rtol=1e-10)


def _dense_components(t, k):
  """Sorted-index entries of a dense antisymmetric numpy tensor (independent of forms.from_tensor)."""
  return np.array([t[tuple(c)] for c in forms.combinations(k)])


def test_hodge_star_batches(rng):
  g = np.stack([_spd(rng) for _ in range(3)])
  w = rng.normal(size=(3, 35))
  batched = jax.jit(forms.hodge_star, static_argnums=1)(w, 3, g)
  for n in range(3):
    np.testing.assert_allclose(batched[n], forms.hodge_star(w[n], 3, g[n]), atol=1e-12)


def _poly_form(k, seed):
  coeffs = jax.random.normal(jax.random.PRNGKey(seed), (forms.num_components(k), 7, 7))

  def fn(x):
    return jnp.einsum("cij,i,j->c", coeffs, jnp.sin(x), x) + jnp.exp(0.1 * coeffs[:, 0, :] @ x)
  return fn


@pytest.mark.parametrize("k", [0, 2, 3])
def test_d_squared_is_zero(k):
  x = jnp.linspace(-0.7, 0.9, 7)
  d = forms.exterior_derivative(_poly_form(k, k), k)
  assert float(jnp.max(jnp.abs(jax.jit(d)(x)))) > 1e-2
  dd = jax.jit(forms.exterior_derivative(d, k + 1))(x)
  assert float(jnp.max(jnp.abs(dd))) < 1e-12


def test_d_of_exact_form_and_leibniz():
  x = jnp.array([0.3, -0.2, 0.5, 0.1, 0.7, -0.4, 0.2])
  # d(x1 x2 dx3) = x2 dx1∧dx3 + x1 dx2∧dx3 (0-based: (0,2), (1,2)).
  def a(y):
    return jnp.zeros(7, y.dtype).at[2].set(y[0] * y[1])
  da = jax.jit(forms.exterior_derivative(a, 1))(x)
  expected = np.zeros(21)
  expected[forms.component_index([0, 2])] = x[1]
  expected[forms.component_index([1, 2])] = x[0]
  np.testing.assert_allclose(da, expected, atol=1e-15)
  # Leibniz: d(α∧β) = dα∧β − α∧dβ for a 1-form α.
  alpha, beta = _poly_form(1, 7), _poly_form(2, 8)
  lhs = jax.jit(forms.exterior_derivative(lambda y: forms.wedge(alpha(y), 1, beta(y), 2), 3))(x)

  @jax.jit
  def rhs_fn(y):
    return (forms.wedge(forms.exterior_derivative(alpha, 1)(y), 2, beta(y), 2)
            - forms.wedge(alpha(y), 1, forms.exterior_derivative(beta, 2)(y), 3))
  rhs = rhs_fn(x)
  np.testing.assert_allclose(lhs, rhs, atol=1e-11)


def test_exterior_derivative_vmaps():
  fn = _poly_form(3, 3)
  xs = jax.random.normal(jax.random.PRNGKey(1), (4, 7))
  d = jax.jit(forms.exterior_derivative(fn, 3))
  batched = jax.jit(jax.vmap(forms.exterior_derivative(fn, 3)))(xs)
  assert batched.shape == (4, 35)
  np.testing.assert_allclose(batched[2], d(xs[2]), atol=1e-12)
