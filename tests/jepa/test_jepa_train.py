"""End-to-end train_and_evaluate on generated data: results, artefacts, resume; real-data learning test."""
import json
import os

import numpy as np
import pytest

from configs import jepa as jepa_configs
from jepa import data as data_lib
from jepa import train
from tests.jepa.jepa_testdata import write_idx


def _synthetic_idx(directory, n_train=256, n_test=128):
  """Two-class-per-quadrant blobs: class = which quadrant holds a bright square (learnable)."""
  rng = np.random.default_rng(0)
  for prefix, n in (("train", n_train), ("t10k", n_test)):
    y = rng.integers(0, 4, n)
    x = rng.integers(0, 60, (n, 28, 28))
    for i, c in enumerate(y):
      r, col = divmod(int(c), 2)
      x[i, 14 * r + 3:14 * r + 11, 14 * col + 3:14 * col + 11] = 230
    write_idx(os.path.join(directory, f"{prefix}-images-idx3-ubyte.gz"), x)
    write_idx(os.path.join(directory, f"{prefix}-labels-idx1-ubyte.gz"), y)


def _tiny(tmp_path, num_steps):
  config = jepa_configs.get_config("tiny")
  config.data.path = str(tmp_path / "data")
  config.train.num_steps = num_steps
  config.train.tensorboard = False
  return config


def test_train_and_evaluate_then_resume(tmp_path):
  os.makedirs(tmp_path / "data")
  _synthetic_idx(str(tmp_path / "data"))
  workdir = str(tmp_path / "run")
  first = _tiny(tmp_path, 3)
  first.train.tensorboard = True
  first.eval.probe_during_train = True
  res = train.train_and_evaluate(first, workdir)
  # The periodic probe at the last step uses the final protocol on the same parameters: equal.
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    periodic = [r["eval/linear_probe_accuracy"] for r in map(json.loads, f) if "eval/linear_probe_accuracy" in r]
  assert periodic and periodic[-1] == res["linear_probe_accuracy"]
  assert 0.0 <= res["linear_probe_accuracy_last4"] <= 1.0 and res["probe_features"] == "last"
  # TensorBoard gets the mask grid and the feature histograms; the monitor's scalars are logged.
  events = b"".join(open(os.path.join(workdir, "tb", f), "rb").read()
                    for f in os.listdir(os.path.join(workdir, "tb")))
  for tag in (b"masks", b"features/pooled", b"features/level_2", b"eval/collapse_alarm"):
    assert tag in events, tag
  for key in ("linear_probe_accuracy", "knn_accuracy", "random_init_linear_probe_accuracy",
              "random_init_knn_accuracy", "pixel_linear_probe_accuracy"):
    assert 0.0 <= res[key] <= 1.0
  # Pixels separate the quadrant classes almost perfectly (a ground truth for the probe path).
  assert res["pixel_linear_probe_accuracy"] > 0.95
  # The paired comparison with the pixel probe is on the same test images as the two accuracies.
  for kind, acc in (("last", res["linear_probe_accuracy"]), ("last4", res["linear_probe_accuracy_last4"])):
    vs = res["vs_pixels"][kind]
    assert vs["difference"] == pytest.approx(acc - res["pixel_linear_probe_accuracy"])
    assert vs["n"] == res["probe_test_samples"] and 0.0 < vs["mcnemar_p"] <= 1.0
  assert set(res["effective_rank"]) == {"level_0", "level_1", "level_2", "pooled"}
  with open(os.path.join(workdir, "results", "final_results.json")) as f:
    assert json.load(f)["knn_accuracy"] == res["knn_accuracy"]
  for name in ("masks.png", "dashboard.png", "training_history.json"):
    assert os.path.exists(os.path.join(workdir, "results", name))
  # Resume: a longer run continues from the step-3 checkpoint instead of restarting.
  res2 = train.train_and_evaluate(_tiny(tmp_path, 6), workdir)
  assert res2["resumed_from_step"] == 3 and res2["steps"] == 6
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    steps = [json.loads(line)["step"] for line in f]
  assert steps == sorted(steps) and max(steps) == 6


def test_bad_config_is_a_clear_error(tmp_path):
  config = _tiny(tmp_path, 3)
  config.optim.grad_accum_steps = 3
  with pytest.raises(ValueError, match="train.batch_size=32 is invalid"):
    train.train_and_evaluate(config, str(tmp_path / "run"))
  config = _tiny(tmp_path, 3)
  config.eval.erank_samples = 100
  with pytest.raises(ValueError, match="eval.erank_samples"):
    train.train_and_evaluate(config, str(tmp_path / "run"))
  config = _tiny(tmp_path, 3)
  config.eval.probe_features = "cls"
  with pytest.raises(ValueError, match="eval.probe_features='cls' is invalid"):
    train.train_and_evaluate(config, str(tmp_path / "run"))


def test_last4_features_concatenate_normed_block_means():
  import jax
  import jax.numpy as jnp
  from jepa import loss as loss_lib, model as model_lib, step as step_lib
  cfg = jepa_configs.get_config("tiny")
  cfg.model.depth = 5  # the last 4 of 5 blocks: final output + blocks 2, 3, 4
  vit = model_lib.vit_config(cfg.model, cfg.data.image_size, 1)
  hier = loss_lib.hierarchy_from_config(cfg.hierarchy, vit.depth, vit.grid)
  mean, std = np.array([0.3]), np.array([0.2])
  fn = step_lib.make_feature_fn(vit, hier, mean, std)
  encoder = model_lib.Encoder(vit)
  params = encoder.init(jax.random.key(0), jnp.zeros((1, 28, 28, 1)))["params"]
  images = np.random.default_rng(0).integers(0, 256, (3, 28, 28, 1)).astype(np.uint8)
  out = fn(params, images)
  d = vit.width
  assert out["pooled_last4"].shape == (3, 4 * d)
  np.testing.assert_allclose(out["pooled_last4"][:, :d], out["pooled"], rtol=1e-6)
  x = data_lib.resize(data_lib.normalize(jnp.asarray(images), mean, std), vit.image_size)
  _, layers = encoder.apply({"params": params}, x, return_layers=True)
  blk = np.asarray(layers[1], np.float64)  # block 2 of 5 = the second of the four
  ln = (blk - blk.mean(-1, keepdims=True)) / np.sqrt(blk.var(-1, keepdims=True) + 1e-6)
  np.testing.assert_allclose(out["pooled_last4"][:, d:2 * d], ln.mean(1), rtol=1e-4, atol=1e-5)
