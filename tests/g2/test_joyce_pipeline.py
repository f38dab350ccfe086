"""Issue 16 end to end through g2.main's train_and_evaluate (configs/g2.py:joyce_quick shrunk to
tiny sizes): the results file holds the group facts, a torsion-free local model, the t⁴ power law,
the Green's-function gain, the torsion map and a Rayleigh–Ritz spectrum of M_t."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from configs import g2 as g2_configs
from g2 import train


def tiny_config():
  c = g2_configs.get_config("joyce_quick")
  c.joyce.orbifold_sizes = (0,)
  c.joyce.eh_points = 4
  c.joyce.torsion_ts = (0.08, 0.16)
  c.joyce.n_radial = 16
  c.joyce.green_points = 64
  c.joyce.region_points = 8
  c.joyce.plot = False
  c.joyce.spectrum_scales = (1.4,)
  c.joyce.spectrum_powers = (1,)
  c.joyce.spectrum_points_outside = 16
  c.joyce.spectrum_points_per_orbit = 8
  c.joyce.spectrum_chunk = 16
  return c


def test_joyce_quick_end_to_end_writes_sane_results(tmp_path):
  report = train.train_and_evaluate(tiny_config(), str(tmp_path))
  with open(os.path.join(tmp_path, "results", "joyce.json")) as f:
    saved = json.load(f)
  assert saved["orbifold"]["singular_T3"] == 12 and saved["orbifold"]["group_order"] == 8
  assert saved["orbifold"]["preserve_phi0"] and saved["orbifold"]["fixed_sets_disjoint"]
  assert saved["orbifold"]["betti"]["resolution"] == {"b2": 12, "b3": 43}
  assert saved["orbifold"]["spectral"]["ladders"]["3"][0]["betti"] == 7  # flat-enough orbifold b3
  loc = saved["local_model"]
  assert loc["dpsi_sq_max"] < 1e-18 and loc["dphi_sq_max"] < 1e-18
  assert loc["alpha_asd_rel_error_max"] < 1e-8 and loc["d_alpha_max"] < 1e-6
  assert 3.9 < saved["resolution"]["torsion_scaling"]["exponent_l2"] < 4.1  # ‖dψ_t‖ ∝ t⁴
  green = saved["resolution"]["green"]
  assert green["green"]["torsion"] < 1e-3 * green["glued"]["torsion"]
  region = saved["resolution"]["torsion_by_region"]["glued"]
  assert region["outside"] == 0.0  # φ_t = φ0 outside the tubes
  assert all(region[f"T3_{o}"] > 0 for o in range(12))
  spec = saved["spectrum"]
  # first non-zero Γ-invariant scalar eigenvalue ≈ 1 (noisy with 112 points)
  assert 0.2 < spec["reference"] < 2.0
  orbifold_rung = spec["degrees"]["3"][0]
  assert orbifold_rung["rank"] == 7 and orbifold_rung["local_forms_per_T3"] == 0
  assert spec["degrees"]["3"][-1]["rank"] > 7
  assert report["cost"]["cpu_s"] > 0


def test_bad_joyce_config_value_is_one_line_exit_2(tmp_path):
  env = {**os.environ, "PYTHONPATH": os.getcwd() + os.pathsep + os.environ.get("PYTHONPATH", "")}
  proc = subprocess.run(
      [sys.executable, "-m", "g2.main", "--config", "configs/g2.py:joyce_quick",
       "--config.joyce.spectrum_base=learned", "--workdir", str(tmp_path / "w")],
      capture_output=True, text=True, env=env, timeout=120)
  assert proc.returncode == 2
  lines = [l for l in proc.stderr.strip().splitlines() if l.startswith("error:")]
  assert lines == ["error: config.joyce.spectrum_base='learned' is invalid: allowed one of "
                   "['glued', 'green']"]
