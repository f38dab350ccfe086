"""Learning on M_t (`g2.resolution_learning`): the plateau criterion and the command line's
one-line errors (fast: no compilation)."""
import numpy as np
import pytest

from g2 import resolution_learning as rl


def test_plateau_criterion():
  steps = np.arange(0, 401, 25)
  falling = 1.0 / (1.0 + steps / 50.0)                     # still improving ×1.6 over the last 25 %
  assert not rl.plateau_reached(steps, falling, window=0.25, tol=0.02, min_steps=200)
  flat = np.where(steps < 250, falling, falling[steps == 250][0] * 1.005)  # stalls at step 250
  assert rl.plateau_reached(steps, flat, window=0.25, tol=0.02, min_steps=200)
  # An improvement just above / below tol over the window decides it (best before step 300
  # = the value at 300; window = steps 300..400).
  v = np.ones_like(steps, float)
  v[steps > 300] = 0.975
  assert not rl.plateau_reached(steps, v, tol=0.02)
  v[steps > 300] = 0.985
  assert rl.plateau_reached(steps, v, tol=0.02)
  # Too short a segment is never a plateau; segments start anywhere (after a learning-rate drop).
  assert not rl.plateau_reached(steps[:8], np.ones(8), min_steps=200)
  assert rl.plateau_reached(steps[4:] + 1000, np.ones(len(steps) - 4), min_steps=200)
  # Rising held-out torsion (divergence) is a plateau of the best value.
  assert rl.plateau_reached(steps, 1.0 + steps / 100.0)


@pytest.mark.parametrize("argv, message", [
    (["--learn_t", "0.1,abc"], "--learn_t='0.1,abc' is invalid"),
    (["--learn_t", "0"], "--learn_t='0' is invalid"),
    (["--learn_t", "0.1", "--batch", "0"], "--batch=0 is invalid: allowed an integer >= 2"),
    (["--learn_t", "0.1", "--plateau_tol", "1.5"], "--plateau_tol=1.5 is invalid"),
    (["--learn_t", "0.1", "--max_seconds", "-3"], "--max_seconds=-3.0 is invalid"),
    (["--learn_t", "0.1", "--eta_scale", "big"], "--eta_scale='big' is invalid"),
    (["--learn_t", "0.1", "--r_outer", "0.9"], "r_outer=0.9 is invalid"),
    (["--learn_t", "0.1", "--bogus", "1"], "unrecognized arguments: --bogus 1"),
    (["--learn_t", "0.1", "--batch", "x"], "argument --batch: invalid int value: 'x'"),
])
def test_bad_input_is_one_line_and_exit_2(argv, message, capsys):
  from g2 import resolution
  with pytest.raises(SystemExit) as e:
    resolution.main(argv)       # g2.resolution forwards --learn_t to g2.resolution_learning
  assert e.value.code == 2
  err = capsys.readouterr().err.strip()
  assert len(err.splitlines()) == 1 and message in err, err


def test_write_out_writes_the_json_atomically_and_only_with_a_path(tmp_path):
  import json  # pylint: disable=g-import-not-at-top
  out = {"t": 0.08, "rows": [1, 2]}
  assert rl.write_out(out, "") is out and not list(tmp_path.iterdir())
  path = tmp_path / "r.json"
  assert rl.write_out(out, str(path)) is out
  assert json.loads(path.read_text()) == out and not (tmp_path / "r.json.tmp").exists()
