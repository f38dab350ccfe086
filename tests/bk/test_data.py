"""bk.data: aligned targets, padded evaluation batches, corpus loading and bad input."""
import numpy as np
import pytest

from bk import data as data_lib
from common.config_validation import ConfigError
from configs import bk as bk_configs


def test_train_batch_targets_are_next_tokens():
  ids = np.arange(10_000, dtype=np.int32)  # id = position, so y must be x + 1 exactly
  for step in (0, 7):
    b = data_lib.train_batch(ids, step, batch_size=5, seq_len=33, seed=3)
    assert b["x"].shape == b["y"].shape == (5, 33)
    np.testing.assert_array_equal(b["y"], b["x"] + 1)
  again = data_lib.train_batch(ids, 7, 5, 33, 3)
  np.testing.assert_array_equal(again["x"], b["x"])  # a pure function of (step, seed)
  assert not np.array_equal(data_lib.train_batch(ids, 8, 5, 33, 3)["x"], b["x"])


def test_eval_batches_cover_split_with_padding():
  ids = np.arange(1, 1002, dtype=np.int32)  # 1001 tokens -> 1000 targets -> 10 windows of 100
  batches = list(data_lib.eval_batches(ids, batch_size=4, seq_len=100))
  assert [b["x"].shape for b in batches] == [(4, 100)] * 3
  w = np.concatenate([b["w"] for b in batches])
  assert w.sum() == 10 * 100 and np.all(w[10:] == 0)
  x = np.concatenate([b["x"] for b in batches])[:10]
  y = np.concatenate([b["y"] for b in batches])[:10]
  np.testing.assert_array_equal(x.reshape(-1), ids[:1000])
  np.testing.assert_array_equal(y, x + 1)
  assert len(list(data_lib.eval_batches(ids, 4, 100, max_batches=2))) == 2


def test_load_embedded_shakespeare():
  cfg = bk_configs.get_config("tiny").data
  d = data_lib.load(cfg)
  assert d.vocab_size == cfg.vocab_size == 200
  assert d.tokenizer.vocab[0] == "<unk>"
  assert len(d.train) > 500_000 and len(d.valid) > 20_000 and len(d.test) > 20_000
  for split in (d.train, d.valid, d.test):
    assert split.min() >= 0 and split.max() < d.vocab_size
  # The unigram baseline is the exp-entropy of the valid unigram distribution under smoothing.
  counts = np.bincount(d.train, minlength=d.vocab_size) + 1.0
  logp = np.log(counts / counts.sum())
  assert d.unigram_ppl_valid == pytest.approx(np.exp(-logp[d.valid].mean()), rel=1e-9)
  assert 10 < d.unigram_ppl_valid < d.vocab_size


def test_byte_tokenizer_and_wikitext_layouts(tmp_path):
  words = "the cat sat on the mat . " * 40
  for layout in ("wiki.{}.tokens", "{}.txt"):
    root = tmp_path / layout.split(".")[0].replace("{}", "x")
    root.mkdir()
    for s in ("train", "valid", "test"):
      (root / layout.format(s)).write_text(words + s)
    cfg = bk_configs.get_config("tiny").data
    cfg.corpus, cfg.path, cfg.vocab_size, cfg.seq_len = "wikitext", str(root), 7, 8
    cfg.eol, cfg.word_split = False, "whitespace"  # the earlier tokenisation
    d = data_lib.load(cfg)
    assert d.tokenizer.decode(d.train[:4]) == "the cat sat on"  # 6 words + <unk>
    assert d.tokenizer.decode(d.valid[-1:]) == "<unk>"  # "valid" is out of vocabulary
    assert d.unk_rate["valid"] == pytest.approx(1 / 281)  # 40 * 7 words + "valid"
    cfg.tokenizer = "byte"
    d = data_lib.load(cfg)
    assert d.vocab_size == 256 and d.unk_rate["valid"] == 0.0
    assert bytes(d.train[:7].astype(np.uint8).tolist()) == b"the cat"


def test_line_word_tokenizer_keeps_lines_and_splits_punctuation():
  s = "Lord, what fools\n\nthese mortals be!\n"
  tok = data_lib.LineWordTokenizer.fit(s, 6, "punctuation", eol=True)
  assert tok.vocab[:2] == ["<unk>", "<eos>"]
  assert tok.words(s) == ["Lord", ",", "what", "fools", "<eos>", "<eos>", "these", "mortals",
                          "be", "!", "<eos>"]
  # 8 distinct words, each once: the 4 kept are the first in string order.
  assert tok.vocab[2:] == ["!", ",", "Lord", "be"]
  assert tok.decode(tok.encode("be, o'er!\n")) == "be , <unk> ! <eos>"  # o'er is one word
  ws = data_lib.LineWordTokenizer.fit(s, 6, "whitespace", eol=True)
  assert ws.words("Lord, what\n") == ["Lord,", "what", "<eos>"]
  no_eol = data_lib.LineWordTokenizer.fit(s, 6, "punctuation", eol=False)
  assert "<eos>" not in no_eol.vocab and no_eol.words("a\nb") == ["a", "b"]


def test_user_corpus_directory_with_lines(tmp_path):
  """--config.data.corpus=wikitext --config.data.path=DIR on a generated WikiText layout."""
  rng = np.random.default_rng(0)
  vocab = [f"w{i}" for i in range(50)] + ["@-@", ",", "."]
  for s, n_lines in (("train", 300), ("valid", 40), ("test", 40)):
    lines = [" ".join(rng.choice(vocab, size=rng.integers(0, 12))) for _ in range(n_lines)]
    (tmp_path / f"wiki.{s}.tokens").write_text("\n".join(lines) + "\n")
  cfg = bk_configs.get_config("tiny").data
  cfg.corpus, cfg.path, cfg.vocab_size, cfg.seq_len = "wikitext", str(tmp_path), 40, 8
  d = data_lib.load(cfg)
  eos = d.tokenizer.index["<eos>"]
  assert eos == 1 and int(np.sum(d.valid == eos)) == 40  # one <eos> per line, empty ones too
  assert "@-@" in d.tokenizer.vocab  # "auto" keeps WikiText's own tokens (whitespace split)
  valid_text = (tmp_path / "wiki.valid.tokens").read_text()
  n_words = len(valid_text.split())
  assert len(d.valid) == n_words + 40
  # 53 word types, 38 kept: the measured <unk> rate is the share of the 15 dropped ones.
  kept = set(d.tokenizer.vocab)
  expected = sum(w not in kept for w in valid_text.split()) / len(d.valid)
  assert d.unk_rate["valid"] == pytest.approx(expected) and 0.05 < expected < 0.6
  assert d.unk_rate["valid"] == pytest.approx(float(np.mean(d.valid == 0)))


def test_embedded_corpus_vocabulary_keeps_unk_under_5_percent():
  cfg = bk_configs.get_config("quick").data
  d = data_lib.load(cfg)
  assert d.vocab_size == 10_000
  assert d.tokenizer.vocab[:2] == ["<unk>", "<eos>"]
  # Measured 4.92 % (word_split="punctuation", <eos> per line); 2,000 words give 13 %.
  assert 0.045 < d.unk_rate["valid"] < 0.05, d.unk_rate
  assert 0.01 < np.mean(d.valid == 1) < 0.3  # <eos> present at a line-like frequency


@pytest.mark.parametrize("field,value,match", [
    ("corpus", "ptb", "config.corpus='ptb' is invalid"),
    ("path", "/nonexistent/wikitext", "is invalid"),
    ("tokenizer", "bpe", "config.tokenizer='bpe' is invalid"),
    ("word_split", "spaces", "config.word_split='spaces' is invalid"),
    ("seq_len", 10_000_000, "seq_len=10000000 is invalid"),
])
def test_bad_data_config_raises_clear_error(field, value, match):
  cfg = bk_configs.get_config("tiny").data
  cfg[field] = value
  if field == "path":
    cfg.corpus = "wikitext"
  with pytest.raises(ConfigError, match=match):
    data_lib.load(cfg)


def test_token_ids_beyond_vocabulary_raise():
  with pytest.raises(ConfigError, match=r"range \[0, 12\] is invalid: allowed ids in \[0, "
                     r"vocab_size=10\)"):
    data_lib.check_token_ids(np.array([0, 3, 12]), 10, "token ids")
