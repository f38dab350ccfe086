"""Streaming image folders: decode and augment on the fly, never hold a dataset in memory.

Layouts (`config.data.name = "image_folder"`, `config.data.path = ROOT`):
  * labelled class folders (ImageNet / STL-10 exported as images):
        ROOT/train/<class>/*.jpg   ROOT/test/<class>/*.jpg      (classes sorted by name)
  * label files (any folder structure):
        ROOT/train.txt, ROOT/test.txt with one "relative/path.jpg <int label>" per line
  * unlabelled pre-training images (STL-10's `unlabeled`, a web crawl, ...):
        config.data.unlabelled_path = DIR: every image below DIR (recursively) is used for
        pre-training; the labelled train/test splits above are then used only by the probes.

Only file names and labels are kept in memory. A training batch is a pure function of the step:
the same epoch-wise permutation as the in-memory datasets (`data.batch_indices`), and per-example
augmentation randomness seeded by (seed, step, global row), so a resumed run, or a run split over
any number of hosts, decodes exactly the same pixels. Each host decodes only its own rows
(`process_index`-th slice of the global batch), on a thread pool (PIL releases the GIL while it
decodes and resamples).
"""
from __future__ import annotations

import concurrent.futures
import math
import os
from typing import Sequence

import numpy as np

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".ppm", ".pgm", ".webp")
STATS_SAMPLE = 512  # images decoded (at model resolution) for the normalisation statistics


def _pil():
  from PIL import Image  # pillow comes with matplotlib
  return Image


def list_images(root: str) -> list[str]:
  """Every image file below root (recursively), sorted."""
  out = []
  for d, _, names in os.walk(root, followlinks=True):
    out += [os.path.join(d, n) for n in names if n.lower().endswith(IMAGE_EXTS)]
  return sorted(out)


def read_split(path: str, split: str) -> tuple[list[str], np.ndarray]:
  """(files, int32 labels) of ROOT/<split>.txt or ROOT/<split>/<class>/ (see the module doc)."""
  label_file = os.path.join(path, f"{split}.txt")
  if os.path.isfile(label_file):
    files, labels = [], []
    with open(label_file) as f:
      for n, line in enumerate(f, 1):
        if not line.strip():
          continue
        parts = line.rsplit(maxsplit=1)
        if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
          raise ValueError(f"{label_file}:{n}: {line.strip()!r} is invalid: allowed "
                           "'relative/path.jpg <integer label>'")
        files.append(os.path.join(path, parts[0]))
        labels.append(int(parts[1]))
    if not files:
      raise FileNotFoundError(f"config.data.path={path!r}: {label_file} lists no images")
    return files, np.asarray(labels, np.int32)
  root = os.path.join(path, split)
  if not os.path.isdir(root):
    raise FileNotFoundError(
        f"config.data.path={path!r} is invalid: allowed a directory with {split}/<class>/ image folders "
        f"or a {split}.txt label file ({root} and {label_file} are missing)")
  classes = sorted(c for c in os.listdir(root) if os.path.isdir(os.path.join(root, c)))
  files, labels = [], []
  for label, c in enumerate(classes):
    names = list_images(os.path.join(root, c))
    files += names
    labels += [label] * len(names)
  if not files:
    raise FileNotFoundError(f"config.data.path={path!r}: no images under {root}/<class>/")
  return files, np.asarray(labels, np.int32)


def center_resize(path: str, size: int, channels: int) -> np.ndarray:
  """Evaluation view: shorter side resized to `size`, centre crop -> uint8 [size, size, C]."""
  Image = _pil()
  with Image.open(path) as im:
    im = im.convert("RGB" if channels == 3 else "L")
    w, h = im.size
    s = size / min(w, h)
    im = im.resize((max(size, round(w * s)), max(size, round(h * s))), Image.BILINEAR)
    w, h = im.size
    left, top = (w - size) // 2, (h - size) // 2
    arr = np.asarray(im.crop((left, top, left + size, top + size)), np.uint8)
  return arr.reshape(size, size, channels)


def crop_box(rng: np.random.Generator, width: int, height: int, scale: Sequence[float],
             ratio: Sequence[float]) -> tuple[int, int, int, int]:
  """Random-resized-crop box (left, top, w, h) as torchvision samples it (10 tries, then centre)."""
  area = width * height
  log_r = (math.log(ratio[0]), math.log(ratio[1]))
  for _ in range(10):
    target = area * rng.uniform(scale[0], scale[1])
    r = math.exp(rng.uniform(*log_r))
    w = int(round(math.sqrt(target * r)))
    h = int(round(math.sqrt(target / r)))
    if 0 < w <= width and 0 < h <= height:
      return int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1)), w, h
  r_in = width / height  # fallback: the largest centred crop inside the ratio range
  if r_in < ratio[0]:
    w, h = width, int(round(width / ratio[0]))
  elif r_in > ratio[1]:
    w, h = int(round(height * ratio[1])), height
  else:
    w, h = width, height
  return (width - w) // 2, (height - h) // 2, w, h


def random_resized_crop(path: str, rng: np.random.Generator, size: int, channels: int,
                        scale: Sequence[float], ratio: Sequence[float], hflip: bool) -> np.ndarray:
  """Training view: a random crop of the *full-resolution* image, resized to size, maybe flipped."""
  Image = _pil()
  with Image.open(path) as im:
    im = im.convert("RGB" if channels == 3 else "L")
    left, top, w, h = crop_box(rng, im.size[0], im.size[1], scale, ratio)
    im = im.resize((size, size), Image.BILINEAR, box=(left, top, left + w, top + h))
    arr = np.asarray(im, np.uint8).reshape(size, size, channels)
  if hflip and rng.random() < 0.5:
    arr = arr[:, ::-1]
  return arr


class LazyImages:
  """A list of image files that behaves like a uint8 array [N, size, size, C] (evaluation view).

  Indexing (an int array, a slice) returns another LazyImages; `np.asarray(x)` decodes it, on a
  thread pool. Nothing is decoded or cached before that.
  """

  def __init__(self, files: Sequence[str], size: int, channels: int, threads: int):
    self.files, self.size, self.channels, self.threads = list(files), size, channels, threads

  @property
  def shape(self) -> tuple[int, int, int, int]:
    return (len(self.files), self.size, self.size, self.channels)

  def __len__(self) -> int:
    return len(self.files)

  def __getitem__(self, idx) -> "LazyImages":
    if isinstance(idx, slice):
      files = self.files[idx]
    else:
      files = [self.files[int(i)] for i in np.atleast_1d(np.asarray(idx))]
    return LazyImages(files, self.size, self.channels, self.threads)

  def _map(self, fn, items) -> np.ndarray:
    if not items:
      return np.zeros((0, self.size, self.size, self.channels), np.uint8)
    with concurrent.futures.ThreadPoolExecutor(max(1, min(self.threads, len(items)))) as pool:
      return np.stack(list(pool.map(fn, items)))

  def __array__(self, dtype=None, copy=None) -> np.ndarray:
    out = self._map(lambda f: center_resize(f, self.size, self.channels), self.files)
    return out if dtype is None else out.astype(dtype)

  def train_batch(self, indices: np.ndarray, step: int, seed: int, scale, ratio, hflip: bool,
                  process_index: int = 0, process_count: int = 1) -> np.ndarray:
    """This host's rows of the global training batch `indices`, augmented: uint8 [B / P, S, S, C].

    Row r of the global batch uses np.random.default_rng([seed, step, r]) whatever the host count.
    """
    b = len(indices)
    if b % process_count:
      raise ValueError(f"config.train.batch_size={b} is invalid: allowed a multiple of the process "
                       f"count {process_count}")
    local = b // process_count
    rows = range(process_index * local, (process_index + 1) * local)

    def one(r):
      rng = np.random.default_rng([seed, step, r])
      return random_resized_crop(self.files[int(indices[r])], rng, self.size, self.channels, scale,
                                 ratio, hflip)

    return self._map(one, list(rows))


def channel_stats(images: LazyImages, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
  """Per-channel mean and std on the [0, 1] scale from a fixed sample of STATS_SAMPLE images."""
  n = len(images)
  idx = np.sort(np.random.default_rng(seed).choice(n, min(n, STATS_SAMPLE), replace=False))
  x = np.asarray(images[idx]).reshape(-1, images.channels).astype(np.float64) / 255.0
  return x.mean(0).astype(np.float32), np.maximum(x.std(0), 1e-3).astype(np.float32)
