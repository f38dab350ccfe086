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


def _write_history(root, name, seed, weights, curve):
  wd = os.path.join(root, name)
  os.makedirs(wd)
  with open(os.path.join(wd, "config.json"), "w") as f:
    json.dump({"seed": seed, "hierarchy": {"kind": "pool", "weights": weights}}, f)
  with open(os.path.join(wd, "metrics.jsonl"), "w") as f:
    for step, value in curve:
      f.write(json.dumps({"step": step, "eval/knn_accuracy": value, "train/loss": 1.0}) + "\n")
      f.write(json.dumps({"step": step + 1, "train/loss": 0.5}) + "\n")
  return wd


def test_history_mode_paired_differences_and_resumed_steps(tmp_path):
  dirs = [_write_history(tmp_path, "f0", 0, [1.0], [(10, 0.5), (20, 0.6)]),
          # a resumed run logs step 20 twice: the latest record counts
          _write_history(tmp_path, "f1", 1, [1.0], [(10, 0.4), (20, 0.1), (20, 0.7)]),
          _write_history(tmp_path, "h0", 0, [1.0, 0.5], [(10, 0.5), (20, 0.65)]),
          _write_history(tmp_path, "h1", 1, [1.0, 0.5], [(10, 0.6)])]  # unfinished: only step 10
  runs = [compare.load_history(d, "eval/knn_accuracy") for d in dirs]
  assert runs[1]["curve"] == {10: 0.4, 20: 0.7}
  summary = compare.summarise_history(runs)
  flat = next(v for k, v in summary.items() if k.startswith("flat"))
  hier = next(v for k, v in summary.items() if k.startswith("hierarchical"))
  np.testing.assert_allclose([flat[20]["mean"], flat[20]["sd"]], [0.65, np.sqrt(0.005)], rtol=1e-12)
  np.testing.assert_allclose(flat[20]["ci95"], 12.706 * np.sqrt(0.005) / np.sqrt(2), rtol=1e-12)
  assert list(hier) == [10]  # only the steps every run of the group reached
  np.testing.assert_allclose(hier[10]["paired_vs_flat"]["mean"], 0.1, rtol=1e-12)  # (0 + 0.2) / 2
  out, png = tmp_path / "h.json", tmp_path / "h.png"
  assert compare.main(["--workdirs", *dirs, "--history", "eval/knn_accuracy", "--out", str(out),
                       "--plot", str(png)]) == 0
  assert png.stat().st_size > 1000 and json.loads(out.read_text())["metric"] == "eval/knn_accuracy"
  assert compare.main(["--workdirs", dirs[0], "--history", "eval/nope"]) == 2


def test_reference_lines_parse_and_reject(tmp_path, capsys):
  assert compare.parse_hlines(["raw pixels=82.4", "a=b=1"]) == [("raw pixels", 82.4), ("a=b", 1.0)]
  d = _write_history(tmp_path, "f0", 0, [1.0], [(10, 0.5), (20, 0.6)])
  png = tmp_path / "p.png"
  assert compare.main(["--workdirs", d, "--history", "eval/knn_accuracy", "--plot", str(png),
                       "--hline", "pixels=82.4"]) == 0 and png.stat().st_size > 1000
  for bad in ("pixels", "=3", "pixels=high"):
    assert compare.main(["--workdirs", d, "--history", "eval/knn_accuracy", "--hline", bad]) == 2
    assert f"--hline={bad!r} is invalid" in capsys.readouterr().err
