"""bk.train: end-to-end runs on the embedded corpus, exact resume after preemption, learning."""
import json
import os
import signal

import jax
import pytest

from bk import data as data_lib
from bk import train
from common.config_validation import ConfigError
from configs import bk as bk_configs

METRICS = ("train/loss", "train/lr", "perf/step_time_ms", "perf/tokens_per_sec", "grad/norm",
           "grad/max", "grad/nan_count", "grad/inf_count", "bk/bk_scale_l0", "bk/bk_scale_l1",
           "bk/v_mean", "bk/v_std", "bk/g_re_mean", "bk/g_re_std", "bk/g_im_mean", "bk/g_im_std",
           "moe/usage_e0", "moe/usage_e3", "moe/routing_entropy", "moe/load_balance", "val/ppl",
           "val/unigram_ppl", "val/unk_rate")


def _tiny():
  c = bk_configs.get_config("tiny")
  c.model.bk_method = "sequential"  # compiles faster; the scan is covered by test_core*
  return c


def _records(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [json.loads(line) for line in f]


@pytest.fixture(scope="module")
def compile_cache(tmp_path_factory):
  """A persistent XLA cache for this module: the resumed run reuses the first run's programs
  (the suite-wide one of tests/conftest.py where it is set)."""
  if os.environ.get("JAX_COMPILATION_CACHE_DIR"):
    yield
    return
  keys = ("jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs",
          "jax_persistent_cache_min_entry_size_bytes")
  previous = {k: getattr(jax.config, k) for k in keys}
  jax.config.update(keys[0], str(tmp_path_factory.mktemp("xla_cache")))
  jax.config.update(keys[1], 0.0)
  jax.config.update(keys[2], 0)
  yield
  for k, v in previous.items():
    jax.config.update(k, v)


@pytest.mark.slow
def test_learns_and_resumes_exactly_after_preemption(tmp_path, monkeypatch, compile_cache):
  cfg = _tiny()
  cfg.train.figures = True
  cfg.train.num_steps, cfg.train.eval_every, cfg.train.save_every = 200, 100, 100
  cfg.train.log_every = 50
  cfg.data.batch_size, cfg.optim.learning_rate = 32, 1e-2
  full = train.train_and_evaluate(cfg, str(tmp_path / "a"))
  assert full["status"] == "done"
  # Held-out perplexity clearly below the add-one unigram model fitted on the training split.
  assert full["val_ppl"] < 0.88 * full["unigram_val_ppl"], full
  assert full["test_ppl"] < 0.88 * full["unigram_test_ppl"], full
  records = _records(tmp_path / "a")
  names = set().union(*[r.keys() for r in records])
  assert set(METRICS) <= names, set(METRICS) - names
  usage = [r for r in records if "moe/usage_e0" in r][-1]
  assert sum(usage[f"moe/usage_e{e}"] for e in range(4)) == pytest.approx(1.0, abs=1e-6)
  assert all(r["grad/nan_count"] == 0 and r["grad/inf_count"] == 0 for r in records
             if "grad/nan_count" in r)
  figs = set(os.listdir(tmp_path / "a" / "results" / "figures"))
  assert {"gii_v_step100.png", "routing_step100.png", "gii_v_step200.png"} <= figs
  assert os.path.exists(tmp_path / "a" / "results" / "dashboard.png")

  # SIGTERM while step 100's batch is drawn: the loop saves step 100 and stops; rerun resumes.
  real_batch = data_lib.train_batch

  def preempting_batch(ids, step, *args):
    if step == 99:
      os.kill(os.getpid(), signal.SIGTERM)
    return real_batch(ids, step, *args)

  monkeypatch.setattr(data_lib, "train_batch", preempting_batch)
  first = train.train_and_evaluate(cfg, str(tmp_path / "b"))
  assert first == {"status": "preempted"}
  monkeypatch.setattr(data_lib, "train_batch", real_batch)
  resumed = train.train_and_evaluate(cfg, str(tmp_path / "b"))
  steps = [r["step"] for r in _records(tmp_path / "b") if "train/loss" in r]
  assert steps == [50, 100, 150, 200]  # no duplicated records after the resume
  assert resumed["val_ppl"] == pytest.approx(full["val_ppl"], rel=1e-5)
  assert resumed["test_ppl"] == pytest.approx(full["test_ppl"], rel=1e-5)


@pytest.mark.parametrize("field,value,match", [
    ("model.top_k", 5, "config.model.top_k=5 is invalid"),
    ("model.arch", "rnn", "config.model.arch='rnn' is invalid"),
    ("data.seq_len", 65, "config.data.seq_len=65 is invalid: allowed <= model.max_len=64"),
    ("model.dtype", "float16", "config.model.dtype='float16' is invalid"),
])
def test_bad_config_raises_clear_error(tmp_path, field, value, match):
  cfg = _tiny()
  section, key = field.split(".")
  cfg[section][key] = value
  with pytest.raises(ConfigError, match=match):
    train.train_and_evaluate(cfg, str(tmp_path))


def test_unknown_preset_raises():
  with pytest.raises(ValueError, match="config arg='step3' is invalid"):
    bk_configs.get_config("step3")
  assert bk_configs.get_config("quick_full").model.remat
  assert bk_configs.get_config("step4").compress.int8
  assert not bk_configs.get_config("noncausal").model.causal
