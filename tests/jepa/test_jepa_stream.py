"""jepa.stream: streamed image folders (labelled, label files, unlabelled), exact and sharded batches."""
import os

import numpy as np
import pytest
from PIL import Image

from configs import jepa as jepa_configs
from jepa import data as data_lib
from jepa import stream
from jepa import train


def _write_folder(root, sizes=((40, 30), (64, 48), (36, 52)), per_class=4, seed=0):
  """root/{train,test}/{a,b}/*.png at several full resolutions; class b is brighter."""
  rng = np.random.default_rng(seed)
  for split in ("train", "test"):
    for c, (lo, hi) in (("a", (0, 100)), ("b", (150, 256))):
      os.makedirs(os.path.join(root, split, c), exist_ok=True)
      for i in range(per_class):
        w, h = sizes[i % len(sizes)]
        img = rng.integers(lo, hi, (h, w, 3)).astype(np.uint8)
        Image.fromarray(img).save(os.path.join(root, split, c, f"{i}.png"))


def _data_cfg(path, size=16):
  cfg = jepa_configs.get_config("tiny").data
  cfg.name, cfg.path, cfg.image_size, cfg.train_limit = "image_folder", str(path), size, 0
  return cfg


def test_class_folders_and_label_files_are_read_lazily(tmp_path):
  _write_folder(str(tmp_path / "f"))
  ds = data_lib.load_dataset(_data_cfg(tmp_path / "f"))
  assert ds.train_images.shape == (8, 16, 16, 3) and ds.num_classes == 2
  np.testing.assert_array_equal(ds.train_labels, [0] * 4 + [1] * 4)
  # Only file names are held; pixels are decoded on access.
  assert not any(isinstance(v, np.ndarray) for v in vars(ds.train_images).values())
  x = np.asarray(ds.train_images[np.array([0, 5])])
  assert x.shape == (2, 16, 16, 3) and x.dtype == np.uint8 and x[0].mean() < 100 < x[1].mean()
  # The same images through a label file, in another order.
  with open(tmp_path / "f" / "train.txt", "w") as f:
    f.write("train/b/1.png 7\ntrain/a/0.png 3\n")
  files, labels = stream.read_split(str(tmp_path / "f"), "train")
  assert [os.path.relpath(p, tmp_path / "f") for p in files] == ["train/b/1.png", "train/a/0.png"]
  np.testing.assert_array_equal(labels, [7, 3])
  with open(tmp_path / "f" / "test.txt", "w") as f:
    f.write("test/a/0.png\n")
  with pytest.raises(ValueError, match="test.txt:1"):
    stream.read_split(str(tmp_path / "f"), "test")
  with pytest.raises(FileNotFoundError, match="config.data.path"):
    data_lib.load_dataset(_data_cfg(tmp_path / "missing"))


def test_train_batches_are_a_function_of_the_step_and_shard_per_host(tmp_path):
  _write_folder(str(tmp_path / "f"))
  ds = data_lib.load_dataset(_data_cfg(tmp_path / "f"))
  idx = data_lib.batch_indices(3, 4, len(ds.pretrain), seed=0)
  args = (3, 0, (0.2, 1.0), (0.75, 1.33), True)
  full = ds.pretrain.train_batch(idx, *args)
  assert full.shape == (4, 16, 16, 3)
  np.testing.assert_array_equal(full, ds.pretrain.train_batch(idx, *args))  # exact resume
  assert not np.array_equal(full, ds.pretrain.train_batch(idx, 4, 0, (0.2, 1.0), (0.75, 1.33), True))
  halves = [ds.pretrain.train_batch(idx, *args, process_index=p, process_count=2) for p in (0, 1)]
  np.testing.assert_array_equal(np.concatenate(halves), full)  # 2 hosts decode the same pixels
  with pytest.raises(ValueError, match="multiple of the process count"):
    ds.pretrain.train_batch(idx, *args, process_index=0, process_count=3)


def test_crops_come_from_the_full_resolution_image(tmp_path):
  """4-pixel stripes: resizing the 256-px image before cropping (the old reader) leaves flat grey."""
  board = (((np.arange(256) // 4) % 2) * 255).astype(np.uint8)[None, :].repeat(256, 0)
  Image.fromarray(np.repeat(board[..., None], 3, -1)).save(tmp_path / "board.png")
  rng = np.random.default_rng(0)
  crops = [stream.random_resized_crop(str(tmp_path / "board.png"), rng, 16, 3, (0.001, 0.002),
                                      (1.0, 1.0), False) for _ in range(4)]
  assert min(c.std() for c in crops) > 60  # fine structure survives: cut from full resolution
  assert stream.center_resize(str(tmp_path / "board.png"), 16, 3).std() < 20  # the eval view
  assert stream.crop_box(rng, 40, 30, (1.0, 1.0), (4 / 3, 4 / 3)) == (0, 0, 40, 30)


def test_train_and_evaluate_streams_unlabelled_images_and_resumes(tmp_path):
  _write_folder(str(tmp_path / "f"), per_class=8)
  os.makedirs(tmp_path / "u" / "deep" / "er")
  rng = np.random.default_rng(1)
  for i in range(12):
    Image.fromarray(rng.integers(0, 256, (50, 70, 3)).astype(np.uint8)).save(
        tmp_path / "u" / ("deep/er" if i % 2 else "deep") / f"{i}.jpg")
  config = jepa_configs.get_config("tiny")
  config.data.update(name="image_folder", path=str(tmp_path / "f"), unlabelled_path=str(tmp_path / "u"),
                     image_size=28, train_limit=0, decode_threads=2)
  config.train.update(batch_size=8, num_steps=2, eval_every=2, save_every=2, log_every=1, tensorboard=False)
  config.eval.update(batch_size=8, train_samples=0, test_samples=0, during_train_samples=16)
  res = train.train_and_evaluate(config, str(tmp_path / "run"))
  assert res["steps"] == 2 and res["probe_train_samples"] == 16 and res["probe_test_samples"] == 16
  assert 0.0 <= res["linear_probe_accuracy"] <= 1.0
  # The two classes differ in brightness: pixels separate them (the labelled split was read right).
  assert res["pixel_linear_probe_accuracy"] == 1.0
  config.train.num_steps = 3
  res2 = train.train_and_evaluate(config, str(tmp_path / "run"))
  assert res2["resumed_from_step"] == 2 and res2["steps"] == 3
