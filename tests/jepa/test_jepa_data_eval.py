"""Data readers (generated IDX / CIFAR / image-folder files, real Fashion-MNIST), augmentation, probes."""
import os
import pickle

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import jepa as jepa_configs
from jepa import data as data_lib
from jepa import evaluation
from tests.jepa.jepa_testdata import write_idx


def make_idx_dataset(directory, n_train=64, n_test=32, seed=0):
  rng = np.random.default_rng(seed)
  for prefix, n in (("train", n_train), ("t10k", n_test)):
    write_idx(os.path.join(directory, f"{prefix}-images-idx3-ubyte.gz"), rng.integers(0, 256, (n, 28, 28)))
    write_idx(os.path.join(directory, f"{prefix}-labels-idx1-ubyte.gz"), rng.integers(0, 10, n))


def test_idx_reader_round_trip(tmp_path):
  make_idx_dataset(str(tmp_path))
  cfg = jepa_configs.get_config("tiny").data
  cfg.path = str(tmp_path)
  ds = data_lib.load_dataset(cfg)
  assert ds.train_images.shape == (64, 28, 28, 1) and ds.test_images.shape == (32, 28, 28, 1)
  raw = np.random.default_rng(0).integers(0, 256, (64, 28, 28))
  np.testing.assert_array_equal(ds.train_images[..., 0], raw)
  np.testing.assert_allclose(ds.mean, [raw.mean() / 255], rtol=1e-5)


def test_missing_dataset_says_how_to_get_it(tmp_path):
  cfg = jepa_configs.get_config("tiny").data
  cfg.path = str(tmp_path / "nothing")
  with pytest.raises(FileNotFoundError, match="dataset-fashion-mnist"):
    data_lib.load_dataset(cfg)
  cfg.name = "svhn"
  with pytest.raises(ValueError, match="data.name='svhn'"):
    data_lib.load_dataset(cfg)


def test_cifar_and_image_folder_readers(tmp_path):
  rng = np.random.default_rng(0)
  cdir = tmp_path / "cifar"
  cdir.mkdir()
  batches = {}
  for name, n in (("data_batch_1", 6), ("data_batch_2", 4), ("test_batch", 5)):
    batches[name] = rng.integers(0, 256, (n, 3072)).astype(np.uint8)
    with open(cdir / name, "wb") as f:
      pickle.dump({b"data": batches[name], b"labels": list(range(n))}, f)
  xtr, ytr, xte, yte = data_lib.load_cifar(str(cdir))
  assert xtr.shape == (10, 32, 32, 3) and xte.shape == (5, 32, 32, 3)
  # Channel-major rows: pixel (0, 1) of image 0 is bytes 1, 1025, 2049.
  np.testing.assert_array_equal(xtr[0, 0, 1], batches["data_batch_1"][0, [1, 1025, 2049]])
  np.testing.assert_array_equal(ytr, [0, 1, 2, 3, 4, 5, 0, 1, 2, 3])

  from PIL import Image
  for split in ("train", "test"):
    for c, colour in (("cat", 200), ("dog", 30)):
      os.makedirs(tmp_path / "folder" / split / c)
      Image.fromarray(np.full((10, 12, 3), colour, np.uint8)).save(tmp_path / "folder" / split / c / "a.png")
  cfg = jepa_configs.get_config("tiny").data
  cfg.name, cfg.path, cfg.image_size = "image_folder", str(tmp_path / "folder"), 8
  ds = data_lib.load_dataset(cfg)
  assert ds.train_images.shape == (2, 8, 8, 3) and ds.host_augment
  np.testing.assert_array_equal(ds.train_labels, [0, 1])
  xtr = np.asarray(ds.train_images)
  assert xtr[0].min() == 200 and xtr[1].max() == 30


def test_batch_indices_deterministic_epochs():
  first_epoch = np.concatenate([data_lib.batch_indices(s, 10, 50, seed=3) for s in range(5)])
  assert sorted(first_epoch.tolist()) == list(range(50))  # each example once per epoch
  np.testing.assert_array_equal(data_lib.batch_indices(7, 10, 50, 3), data_lib.batch_indices(7, 10, 50, 3))
  assert not np.array_equal(data_lib.batch_indices(5, 10, 50, 3), data_lib.batch_indices(0, 10, 50, 3))
  with pytest.raises(ValueError, match="batch_size"):
    data_lib.batch_indices(0, 100, 50, 0)


def test_random_resized_crop_identity_and_flip():
  x = jax.random.normal(jax.random.PRNGKey(0), (3, 28, 28, 1))
  crop = jax.jit(lambda k, x: data_lib.random_resized_crop(k, x, 28, (1.0, 1.0), (1.0, 1.0), False))
  np.testing.assert_allclose(crop(jax.random.PRNGKey(1), x), x, atol=1e-5)
  flip = jax.jit(lambda k, x: data_lib.random_resized_crop(k, x, 28, (1.0, 1.0), (1.0, 1.0), True))
  out = np.asarray(flip(jax.random.PRNGKey(1), x))
  for b in range(3):  # each image is either itself or its mirror image
    assert np.allclose(out[b], x[b], atol=1e-5) or np.allclose(out[b], x[b, :, ::-1], atol=1e-5)


def test_knn_linear_probe_and_effective_rank_ground_truth():
  rng = np.random.default_rng(0)
  centres = rng.normal(size=(3, 8)) * 5
  ytr, yte = rng.integers(0, 3, 300), rng.integers(0, 3, 100)
  xtr, xte = centres[ytr] + rng.normal(size=(300, 8)), centres[yte] + rng.normal(size=(100, 8))
  assert evaluation.knn_accuracy(xtr, ytr, xte, yte, k=5) > 0.97
  assert evaluation.linear_probe_accuracy(xtr, ytr, xte, yte, iterations=100) > 0.97
  # Labels independent of features: chance level.
  assert evaluation.knn_accuracy(xtr, rng.integers(0, 3, 300), xte, yte, k=5) < 0.6
  # RankMe: equal singular values -> rank d; rank one -> 1.
  assert evaluation.effective_rank(np.eye(6) * 3.0, centred=False) == pytest.approx(6.0)
  assert evaluation.effective_rank(np.outer(rng.normal(size=50), rng.normal(size=5)), centred=False) \
      == pytest.approx(1.0, abs=1e-6)
  # Centring removes a shared offset: a constant vector plus small isotropic noise.
  x = 10.0 + 0.01 * rng.normal(size=(2000, 4))
  assert evaluation.effective_rank(x, centred=False) < 1.1 < 3.5 < evaluation.effective_rank(x)


def test_paired_comparison_hand_values():
  # 10 examples: a right where b is wrong on 3, b right where a is wrong on 1, both right on 4.
  a = np.array([1, 1, 1, 1, 1, 1, 1, 0, 0, 0], bool)
  b = np.array([1, 1, 1, 1, 0, 0, 0, 1, 0, 0], bool)
  r = evaluation.paired_comparison(a, b)
  assert (r["only_a_correct"], r["only_b_correct"], r["n"]) == (3, 1, 10)
  assert r["difference"] == pytest.approx(0.2)
  d = a.astype(float) - b
  assert r["ci95"] == pytest.approx(1.96 * d.std(ddof=1) / np.sqrt(10))
  assert r["mcnemar_p"] == pytest.approx(0.625)  # 2 * P(X >= 3), X ~ Bin(4, 1/2) = 2 * 5/16
  # 10 discordant pairs all one way: p = 2 / 2^10; swapping the arguments flips the sign only.
  a, b = np.r_[np.ones(10, bool), np.ones(5, bool)], np.r_[np.zeros(10, bool), np.ones(5, bool)]
  r, s = evaluation.paired_comparison(a, b), evaluation.paired_comparison(b, a)
  assert r["mcnemar_p"] == pytest.approx(2 / 1024) == s["mcnemar_p"]
  assert r["difference"] == pytest.approx(10 / 15) == -s["difference"]
  assert evaluation.paired_comparison(a, a)["mcnemar_p"] == 1.0
  with pytest.raises(ValueError, match="equal-length"):
    evaluation.paired_comparison(a, a[:3])


REAL = os.path.isdir(data_lib.FASHION_MNIST_DIR)


@pytest.mark.skipif(not REAL, reason=f"Fashion-MNIST not installed at {data_lib.FASHION_MNIST_DIR} "
                    "(apt-get install dataset-fashion-mnist)")
def test_real_fashion_mnist():
  cfg = jepa_configs.get_config("default").data
  ds = data_lib.load_dataset(cfg)
  assert ds.train_images.shape == (60000, 28, 28, 1) and ds.test_images.shape == (10000, 28, 28, 1)
  assert np.bincount(ds.train_labels).tolist() == [6000] * 10
  assert np.bincount(ds.test_labels).tolist() == [1000] * 10
  np.testing.assert_allclose([ds.mean[0], ds.std[0]], [0.2860, 0.3530], atol=1e-3)
