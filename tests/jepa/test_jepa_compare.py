"""jepa.compare: grouping by hierarchy, mean ± sample std over seeds, clear error on unfinished runs."""
import json
import os

import numpy as np
import pytest

from jepa import compare


def _write_run(root, name, seed, weights, lp, knn):
  wd = os.path.join(root, name)
  os.makedirs(os.path.join(wd, "results"))
  res = {"linear_probe_accuracy": lp, "knn_accuracy": knn, "random_init_linear_probe_accuracy": 0.5,
         "random_init_knn_accuracy": 0.4, "pixel_linear_probe_accuracy": 0.8, "hierarchy": "pool",
         "hierarchy_weights": weights, "effective_rank": {"level_0": 10.0 + seed, "pooled": 3.0}}
  with open(os.path.join(wd, "results", "final_results.json"), "w") as f:
    json.dump(res, f)
  with open(os.path.join(wd, "config.json"), "w") as f:
    json.dump({"seed": seed}, f)
  return wd


def test_groups_and_statistics(tmp_path):
  dirs = [_write_run(tmp_path, f"h{s}", s, [1.0, 0.5, 0.25], 0.6 + 0.1 * s, 0.5) for s in range(3)]
  dirs += [_write_run(tmp_path, f"f{s}", s, [1.0], 0.7, 0.4 + 0.02 * s) for s in range(2)]
  runs = [compare.load(d) for d in dirs]
  summary = compare.summarise(runs)
  assert len(summary) == 2
  hier = next(v for k, v in summary.items() if k.startswith("hierarchical (3 levels)"))
  flat = next(v for k, v in summary.items() if k.startswith("flat"))
  np.testing.assert_allclose(hier["linear_probe_accuracy"][:2], (0.7, 0.1), rtol=1e-12)
  np.testing.assert_allclose(hier["effective_rank_level_0"][:2], (11.0, 1.0), rtol=1e-12)
  np.testing.assert_allclose(flat["knn_accuracy"][:2], (0.41, np.sqrt(2e-4)), rtol=1e-9)
  assert hier["seeds"] == [0, 1, 2] and flat["linear_probe_accuracy"][2] == 2
  out = tmp_path / "cmp.json"
  assert compare.main(["--workdirs", *dirs, "--out", str(out)]) == 0
  assert "70.0 ± 10.0" in compare.markdown(summary, runs)
  assert json.loads(out.read_text())["summary"]


def test_unfinished_run_is_a_clear_error(tmp_path, capsys):
  os.makedirs(tmp_path / "running")
  assert compare.main(["--workdirs", str(tmp_path / "running")]) == 2
  assert "has no results/final_results.json" in capsys.readouterr().err
