"""Tests for common/text.py: corpus reading, tokenizers, LM batching, unigram baseline."""
import math

import numpy as np
import pytest

from common import text


@pytest.fixture(scope="module")
def shakespeare():
  return text.load_corpus("shakespeare")


def test_shakespeare_split_is_by_play_markup_free_and_deterministic(shakespeare):
  assert set(shakespeare) == {"train", "valid", "test"}
  n = {k: len(v) for k, v in shakespeare.items()}
  assert n["train"] > 10 * n["valid"] > 0 and n["test"] > 0
  # The valid split starts with a play title line (split by play) and has no Markdown left.
  for split in shakespeare.values():
    for mark in ("**", "_", "#", "\\["):
      assert mark not in split, mark
  assert shakespeare["valid"].startswith("Henry IV, Part I\n")
  assert "\nHAMLET:\n" in shakespeare["test"] + shakespeare["train"] + shakespeare["valid"]
  again = text.load_corpus("shakespeare")
  assert again["valid"] == shakespeare["valid"] and again["test"] == shakespeare["test"]


def test_strip_play_markdown_ground_truth():
  md = "# Title\n\n## ACT I\n\n**HAMLET**  \nTo be, or \\[not\\] to be  \n\n_Exit_\n"
  assert text.strip_play_markdown(md) == "Title\n\nACT I\n\nHAMLET:\nTo be, or [not] to be\n\nExit\n"


def test_wikitext_reader_and_errors(tmp_path):
  for s in ("train", "valid", "test"):
    (tmp_path / f"wiki.{s}.tokens").write_text(f" = {s} = \n a b <unk> \n")
  c = text.load_corpus("wikitext", str(tmp_path))
  assert c["valid"] == " = valid = \n a b <unk> \n"
  with pytest.raises(ValueError, match="path"):
    text.load_corpus("wikitext")
  with pytest.raises(ValueError, match="does-not-exist"):
    text.load_corpus("wikitext", str(tmp_path / "does-not-exist"))
  (tmp_path / "wiki.test.tokens").unlink()
  with pytest.raises(ValueError, match="no test file"):
    text.load_corpus("wikitext", str(tmp_path))
  with pytest.raises(ValueError, match="name='ptb'"):
    text.load_corpus("ptb")


def test_word_tokenizer_topk_ties_and_unk():
  tok = text.WordTokenizer.fit("b a c a b d d e", vocab_size=4)
  # counts a=2 b=2 d=2 c=1 e=1: ties broken by string order; 3 words + <unk>.
  assert tok.vocab == ["<unk>", "a", "b", "d"]
  ids = tok.encode("a  e\nd zzz")
  np.testing.assert_array_equal(ids, [1, 0, 3, 0])
  assert ids.dtype == np.int32
  assert tok.decode(ids) == "a <unk> d <unk>"


def test_byte_tokenizer_roundtrip():
  tok = text.ByteTokenizer()
  s = "Thou art — here\n"
  ids = tok.encode(s)
  assert tok.vocab_size == 256 and ids.dtype == np.int32
  assert len(ids) == len(s.encode("utf-8")) and ids[0] == ord("T")
  assert tok.decode(ids) == s


def test_lm_batch_deterministic_and_shifted():
  ids = np.arange(1000, dtype=np.int32)
  x, y = text.lm_batch(ids, step=7, batch_size=4, seq_len=16, seed=3)
  assert x.shape == y.shape == (4, 16) and x.dtype == np.int32
  np.testing.assert_array_equal(y[:, :-1], x[:, 1:])
  np.testing.assert_array_equal(y, x + 1)  # ids are consecutive integers
  x2, _ = text.lm_batch(ids, step=7, batch_size=4, seq_len=16, seed=3)
  np.testing.assert_array_equal(x, x2)
  x3, _ = text.lm_batch(ids, step=8, batch_size=4, seq_len=16, seed=3)
  x4, _ = text.lm_batch(ids, step=7, batch_size=4, seq_len=16, seed=4)
  assert not np.array_equal(x, x3) and not np.array_equal(x, x4)
  with pytest.raises(ValueError, match="len\\(ids\\)"):
    text.lm_batch(ids[:10], step=0, batch_size=2, seq_len=16, seed=0)


def test_eval_batches_cover_without_overlap():
  ids = np.arange(103, dtype=np.int32)
  batches = list(text.eval_batches(ids, batch_size=4, seq_len=10))
  xs = np.concatenate([b[0] for b in batches])
  ys = np.concatenate([b[1] for b in batches])
  assert [b[0].shape[0] for b in batches] == [4, 4, 2]
  np.testing.assert_array_equal(xs.reshape(-1), ids[:100])  # every full window, once, in order
  np.testing.assert_array_equal(ys.reshape(-1), ids[1:101])
  assert len(list(text.eval_batches(ids, 4, 10, max_batches=1))) == 1


def test_unigram_perplexity_ground_truth():
  # train counts over V=4: [2, 1, 0, 1] -> p = (c+1)/(4+4) = [3, 2, 1, 2] / 8.
  train = np.array([0, 0, 1, 3])
  evals = np.array([0, 2])
  expected = math.exp(-(math.log(3 / 8) + math.log(1 / 8)) / 2)
  assert text.unigram_perplexity(train, evals, 4) == pytest.approx(expected, rel=1e-12)
  # A uniform eval on an empty-ish model tends to V.
  assert text.unigram_perplexity(np.array([], dtype=np.int64), np.arange(4), 4) == pytest.approx(4)
  with pytest.raises(ValueError, match="vocab_size=4"):
    text.unigram_perplexity(train, np.array([4]), 4)
