"""Small form helpers the learner needs beyond the core API (g2/forms.py).

Component layout is the core's: k-form components in lexicographic order of i1 < ... < ik.
  * `wedge_dense`: dense structure tensor of ∧ built from the core's `forms.wedge` on basis forms;
  * `one_form_wedge3`: a∧b∧c of three 1-forms (3x3 minors), for coframe ansätze;
  * `evaluate_plane`: φ(v1, v2, v3) for the calibration loss.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from g2 import forms


@functools.lru_cache(maxsize=None)
def wedge_dense(p: int, q: int) -> np.ndarray:
  """Dense C[a, b, c] (float64 numpy) with (α∧β)_c = C_abc α_a β_b (the core's convention)."""
  na, nb = forms.num_components(p), forms.num_components(q)
  ea = np.eye(na)[:, None, :].repeat(nb, axis=1)
  eb = np.eye(nb)[None, :, :].repeat(na, axis=0)
  with jax.ensure_compile_time_eval():  # may be first called while tracing a jitted function
    return np.asarray(forms.wedge(jnp.asarray(ea, jnp.float32), p, jnp.asarray(eb, jnp.float32),
                                  q), np.float64)


def one_form_wedge3(a: jax.Array, b: jax.Array, c: jax.Array) -> jax.Array:
  """a∧b∧c of three 1-forms [7] -> [35] components (3x3 minors of the 3x7 matrix)."""
  idx = forms.combinations(3)
  m = jnp.stack([a, b, c])  # [3, 7]
  return jnp.linalg.det(jnp.transpose(m[:, idx], (1, 0, 2)))


def evaluate_plane(phi: jax.Array, vectors: jax.Array) -> jax.Array:
  """φ(v1, v2, v3) for a 3-form [35] and three tangent vectors [3, 7]."""
  return jnp.dot(phi, one_form_wedge3(vectors[0], vectors[1], vectors[2]))
