"""Validation report: expected Betti numbers come from the problem, head counts say "no gap"."""
import types

import jax.numpy as jnp
import numpy as np
import pytest

from configs import g2 as g2_config
from g2 import forms, problems, validation

pytestmark = pytest.mark.usefixtures("x64")


class _OtherTopology(problems.TorusProblem):
  """The flat torus relabelled with other Betti numbers: the report must follow the problem."""
  betti_numbers = {2: 2, 3: 3}


def _learner(problem_cls, n_h2=3, n_h3=3):
  c = g2_config.get_config("tiny")
  c.model.n_h2, c.model.n_h3 = n_h2, n_h3
  c.harmonic.n_points = 256
  problem = problem_cls(c)
  problem.phi_fn = lambda params: problem.exact_phi_fn()  # the flat (pulled-back) answer
  eye2, eye3 = np.eye(21), np.eye(35)

  def head_fns(params):
    del params
    return (lambda x: jnp.asarray(eye2[:n_h2], x.dtype) + 0.0 * x[0],
            lambda x: jnp.asarray(eye3[:n_h3], x.dtype) + 0.0 * x[0])

  return types.SimpleNamespace(config=c, problem=problem, head_fns=head_fns)


def test_expected_betti_numbers_come_from_the_problem_and_heads_report_no_gap():
  # Constant heads on the flat metric (phi0): all exactly harmonic, so there is no gap inside
  # the head space; the count is by the reference scale, and the labels are the problem's.
  learner = _learner(_OtherTopology)
  learner.problem.phi_fn = lambda params: (lambda x: problems.g2form.phi0(x.dtype))
  report, heads = validation.betti_report(learner, {"phi": None, "harmonic": None}, trial=False,
                                          with_heads=True)
  b2, b3 = report["b2_learned_heads"], report["b3_learned_heads"]
  assert b2["expected"] == 2 and b3["expected"] == 3
  assert "b2 = 2" in b2["note"] and "note" not in b3  # 3 heads > b2 = 2; 3 heads = b3
  assert b2["gap_inside_head_space"] == "no gap" and b3["gap_inside_head_space"] == "no gap"
  assert b2["harmonic_heads"] == 3 and b3["harmonic_heads"] == 3
  assert "zero_cut" not in str(report)
  assert report["reference_scalar_eigenvalue"]["value"] == pytest.approx(1.0, abs=1e-6)
  assert heads[2][1]["betti"] == 3


def test_torus_expected_betti_numbers_are_c7k():
  p = problems.TorusProblem(g2_config.get_config("tiny"))
  assert [p.betti_numbers[k] for k in range(8)] == [1, 7, 21, 35, 35, 21, 7, 1]
  assert forms.num_components(3) == p.betti_numbers[3]
