"""Image datasets (Fashion-MNIST IDX, CIFAR-style pickles in memory; image folders streamed) and in-jit augmentation."""
from __future__ import annotations

import gzip
import os
import pickle
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
DATASETS = ("fashion_mnist", "cifar", "image_folder")


class Dataset(NamedTuple):
  """uint8 images [N, H, W, C] and int32 labels [N] for train and test, plus normalisation stats.

  Image arrays are NumPy arrays (in-memory datasets) or `stream.LazyImages` (image folders,
  decoded on demand). `pretrain_images` are the pre-training images (None: train_images);
  `host_augment` says that training batches come augmented from the host (streaming) rather
  than being cropped inside the jitted step.
  """
  train_images: Any
  train_labels: np.ndarray
  test_images: Any
  test_labels: np.ndarray
  mean: np.ndarray  # [C] on the [0, 1] scale, from the train split
  std: np.ndarray  # [C]
  num_classes: int
  pretrain_images: Any = None
  host_augment: bool = False

  @property
  def pretrain(self):
    return self.train_images if self.pretrain_images is None else self.pretrain_images


def read_idx(path: str) -> np.ndarray:
  """Reads an IDX file (optionally gzipped): uint8 images [N, H, W] or labels [N]."""
  opener = gzip.open if path.endswith(".gz") else open
  with opener(path, "rb") as f:
    raw = f.read()
  if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
    raise ValueError(f"{path}: not an unsigned-byte IDX file (magic {raw[:4]!r})")
  ndim = raw[3]
  dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
  data = np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim)
  if data.size != int(np.prod(dims)):
    raise ValueError(f"{path}: IDX header says {dims} but holds {data.size} bytes")
  return data.reshape(dims)


def _find(directory: str, stem: str) -> str:
  for name in (stem, stem + ".gz"):
    if os.path.exists(os.path.join(directory, name)):
      return os.path.join(directory, name)
  raise FileNotFoundError(
      f"config.data.path={directory!r}: {stem}[.gz] not found. Fashion-MNIST ships in Debian's package "
      f"dataset-fashion-mnist (`apt-get install dataset-fashion-mnist`, files in {FASHION_MNIST_DIR}), or "
      "download the four IDX files from https://github.com/zalandoresearch/fashion-mnist and set "
      "--config.data.path to their directory")


def load_fashion_mnist(path: str = "") -> tuple[np.ndarray, ...]:
  d = path or FASHION_MNIST_DIR
  if not os.path.isdir(d):
    _find(d, "train-images-idx3-ubyte")  # raises the explanatory error
  xs = [read_idx(_find(d, f"{p}-images-idx3-ubyte"))[..., None] for p in ("train", "t10k")]
  ys = [read_idx(_find(d, f"{p}-labels-idx1-ubyte")).astype(np.int32) for p in ("train", "t10k")]
  for x, y in zip(xs, ys):
    if len(x) != len(y):
      raise ValueError(f"{d}: {len(x)} images but {len(y)} labels")
  return xs[0], ys[0], xs[1], ys[1]


def load_cifar(path: str) -> tuple[np.ndarray, ...]:
  """CIFAR-10/100 python pickles: data_batch_* + test_batch (or train + test for CIFAR-100)."""
  if not path or not os.path.isdir(path):
    raise FileNotFoundError(f"config.data.path={path!r} is invalid: allowed a directory holding the CIFAR "
                            "python batches (data_batch_1..5 and test_batch, or train and test)")

  def read(names):
    xs, ys = [], []
    for name in names:
      with open(os.path.join(path, name), "rb") as f:
        d = pickle.load(f, encoding="bytes")
      xs.append(np.asarray(d[b"data"], np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
      ys.append(np.asarray(d.get(b"labels", d.get(b"fine_labels")), np.int32))
    return np.concatenate(xs), np.concatenate(ys)

  names = sorted(n for n in os.listdir(path) if n.startswith("data_batch_")) or ["train"]
  return (*read(names), *read(["test_batch" if os.path.exists(os.path.join(path, "test_batch")) else "test"]))


def load_dataset(data_cfg: Any) -> Dataset:
  """Loads `config.data` (name, path, image_size, train_limit) into memory as uint8."""
  if data_cfg.name not in DATASETS:
    raise ValueError(f"config.data.name={data_cfg.name!r} is invalid: allowed {DATASETS}")
  if data_cfg.name == "fashion_mnist":
    xtr, ytr, xte, yte = load_fashion_mnist(data_cfg.path)
  elif data_cfg.name == "cifar":
    xtr, ytr, xte, yte = load_cifar(data_cfg.path)
  else:
    return load_image_folder(data_cfg)
  if data_cfg.train_limit:
    xtr, ytr = xtr[:data_cfg.train_limit], ytr[:data_cfg.train_limit]
  return make_dataset(xtr, ytr, xte, yte)


def load_image_folder(data_cfg: Any) -> Dataset:
  """Streaming image folders (layouts in `stream`): file lists only, decoded batch by batch."""
  from jepa import stream

  path, size = data_cfg.path, data_cfg.image_size
  if not path or not os.path.isdir(path):
    raise FileNotFoundError(f"config.data.path={path!r} is invalid: allowed a directory with train/ and "
                            "test/ class folders or train.txt/test.txt label files")
  (ftr, ytr), (fte, yte) = stream.read_split(path, "train"), stream.read_split(path, "test")
  lazy = lambda files: stream.LazyImages(files, size, 3, data_cfg.decode_threads)
  pretrain = None
  if data_cfg.unlabelled_path:
    files = stream.list_images(data_cfg.unlabelled_path)
    if not files:
      raise FileNotFoundError(f"config.data.unlabelled_path={data_cfg.unlabelled_path!r}: no images below it")
    pretrain = lazy(files)
  xtr = lazy(ftr)
  if data_cfg.train_limit:
    if pretrain is None:
      xtr, ytr = xtr[:data_cfg.train_limit], ytr[:data_cfg.train_limit]
    else:
      pretrain = pretrain[:data_cfg.train_limit]
  mean, std = stream.channel_stats(pretrain if pretrain is not None else xtr)
  num_classes = int(max(ytr.max(), yte.max())) + 1
  return Dataset(xtr, ytr, lazy(fte), yte, mean, std, num_classes, pretrain, host_augment=True)


def make_dataset(xtr, ytr, xte, yte) -> Dataset:
  """Wraps uint8 arrays [N, H, W, C] (+ labels) into a Dataset with train-split statistics."""
  scaled = xtr.reshape(-1, xtr.shape[-1]).astype(np.float64) / 255.0
  num_classes = int(max(ytr.max(), yte.max())) + 1
  return Dataset(xtr, ytr.astype(np.int32), xte, yte.astype(np.int32), scaled.mean(0).astype(np.float32),
                 np.maximum(scaled.std(0), 1e-3).astype(np.float32), num_classes)


def batch_indices(step: int, batch_size: int, num_examples: int, seed: int) -> np.ndarray:
  """Deterministic function of the step: epoch-wise permutations (each image once per epoch)."""
  if batch_size > num_examples:
    raise ValueError(f"config.train.batch_size={batch_size} is invalid: allowed <= {num_examples} "
                     "training images")
  per_epoch = num_examples // batch_size  # drop the remainder, as a shuffled loader would
  epoch, pos = divmod(step, per_epoch)
  perm = np.random.default_rng([seed, epoch]).permutation(num_examples)
  return perm[pos * batch_size:(pos + 1) * batch_size]


def normalize(images_u8: jax.Array, mean, std) -> jax.Array:
  """uint8 [B, H, W, C] -> float32 standardised with the dataset statistics."""
  return (images_u8.astype(jnp.float32) / 255.0 - jnp.asarray(mean)) / jnp.asarray(std)


def resize(images: jax.Array, size: int) -> jax.Array:
  """Bilinear resize of float images [B, H, W, C] to size x size (identity when already there)."""
  if images.shape[1:3] == (size, size):
    return images
  return jax.image.resize(images, (images.shape[0], size, size, images.shape[3]), "linear")


def random_resized_crop(key: jax.Array, images: jax.Array, size: int, scale=(0.3, 1.0),
                        ratio=(0.75, 4.0 / 3.0), hflip: bool = True) -> jax.Array:
  """Per-image random resized crop (area fraction `scale`, aspect w/h `ratio`) + optional flip.

  images: float [B, H, W, C] -> [B, size, size, C]; bilinear, inside jit.
  """
  b, h, w, c = images.shape
  k_area, k_ratio, k_y, k_x, k_flip = jax.random.split(key, 5)
  area = jax.random.uniform(k_area, (b,), minval=scale[0], maxval=scale[1]) * h * w
  log_r = jax.random.uniform(k_ratio, (b,), minval=np.log(ratio[0]), maxval=np.log(ratio[1]))
  r = jnp.exp(log_r)
  cw = jnp.clip(jnp.sqrt(area * r), 1.0, w)
  ch = jnp.clip(jnp.sqrt(area / r), 1.0, h)
  y0 = jax.random.uniform(k_y, (b,)) * (h - ch)
  x0 = jax.random.uniform(k_x, (b,)) * (w - cw)

  def crop(img, y0, x0, ch, cw):
    sy, sx = size / ch, size / cw
    return jax.image.scale_and_translate(img, (size, size, c), (0, 1), jnp.stack([sy, sx]),
                                         jnp.stack([-y0 * sy, -x0 * sx]), method="linear", antialias=False)

  out = jax.vmap(crop)(images, y0, x0, ch, cw)
  if hflip:
    flip = jax.random.bernoulli(k_flip, 0.5, (b,))
    out = jnp.where(flip[:, None, None, None], out[:, :, ::-1], out)
  return out
