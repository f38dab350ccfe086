"""bk.lm_study: the plateau rule, budgets, confidence intervals and the summary on known curves."""
import math

import pytest

from bk import lm_study


def test_plateau_rule_compares_last_quarter_with_the_rest():
  flat = [(100 * i, 5.0 - 0.001 * i) for i in range(1, 9)]  # 0.02 % per eval
  assert lm_study.plateau_reached(flat, min_steps=400, tol=0.01)
  assert not lm_study.plateau_reached(flat[:3], min_steps=400, tol=0.01)  # before min_steps
  falling = [(100 * i, 5.0 - 0.05 * i) for i in range(1, 9)]  # 2 % per 200 steps at 800
  assert not lm_study.plateau_reached(falling, min_steps=400, tol=0.01)
  # Best-so-far semantics: a noisy last evaluation above the best does not restart training.
  noisy = [(100, 5.0), (200, 4.5), (300, 4.4), (400, 4.39), (500, 4.6)]
  assert lm_study.plateau_reached(noisy, min_steps=400, tol=0.01)
  # At step 800 the early evaluations are those at <= 600: 4.40 vs 4.30 overall = 2.3 %.
  late_drop = [(100 * i, 4.4) for i in range(1, 7)] + [(700, 4.35), (800, 4.30)]
  assert not lm_study.plateau_reached(late_drop, min_steps=400, tol=0.01)
  assert lm_study.plateau_reached(late_drop, min_steps=400, tol=0.03)


def test_value_at_budget_takes_the_last_evaluation_inside():
  curve = [{"step": 100, "cpu_s": 10.0, "flops": 1e9, "val_loss": 6.0},
           {"step": 200, "cpu_s": 21.0, "flops": 2e9, "val_loss": 5.0},
           {"step": 300, "cpu_s": 30.0, "flops": 3e9, "val_loss": 4.5}]
  assert lm_study.value_at_budget(curve, "step", 200) == 5.0
  assert lm_study.value_at_budget(curve, "cpu_s", 29.9) == 5.0
  assert lm_study.value_at_budget(curve, "flops", 3e9) == 4.5
  with pytest.raises(ValueError, match="budget cpu_s=5 is invalid"):
    lm_study.value_at_budget(curve, "cpu_s", 5)


def test_mean_sd_ci_uses_the_t_quantile():
  s = lm_study.mean_sd_ci([1.0, 2.0, 3.0])
  assert s["mean"] == 2.0 and s["sd"] == pytest.approx(1.0)
  assert s["ci95"] == pytest.approx(4.303 / math.sqrt(3))


def _run(arch, seed, losses, cpu_per_step):
  curve = [{"step": 100 * (i + 1), "cpu_s": cpu_per_step * 100 * (i + 1),
            "flops": 1e9 * 100 * (i + 1), "val_loss": l} for i, l in enumerate(losses)]
  return {"arch": arch, "seq_len": 128, "seed": seed, "stop": "plateau", "steps": curve[-1]["step"],
          "curve": curve, "val_ppl_full": math.exp(losses[-1]), "train_cpu_s": curve[-1]["cpu_s"],
          "step_flops": 1e9, "params": {"total": 10, "non_embedding": 5, "active_non_embedding": 3}}


def test_summary_equal_steps_and_equal_cpu():
  # The Transformer learns faster per step but costs twice the CPU per step.
  runs = []
  for seed in (0, 1):
    runs.append(_run("bk", seed, [6.0, 5.5, 5.2, 5.1], 0.1))
    runs.append(_run("transformer", seed, [5.8, 5.3, 5.0], 0.2))
  rows = {r["arch"]: r for r in lm_study.summarize({"runs": runs})}
  bk, tf = rows["bk"], rows["transformer"]
  assert bk["budgets"] == {"step": 300, "cpu_s": pytest.approx(40.0), "flops": 3e11}
  assert bk["ppl_at_equal_step"]["mean"] == pytest.approx(math.exp(5.2))
  assert tf["ppl_at_equal_step"]["mean"] == pytest.approx(math.exp(5.0))
  # 40 CPU-s: BK has done its 400 steps (5.1), the Transformer its first 200 (5.3).
  assert bk["ppl_at_equal_cpu_s"]["mean"] == pytest.approx(math.exp(5.1))
  assert tf["ppl_at_equal_cpu_s"]["mean"] == pytest.approx(math.exp(5.3))
  assert bk["ratio_to_tf_at_equal_step"]["mean"] == pytest.approx(math.exp(0.2))
  assert bk["ratio_to_tf_at_equal_cpu_s"]["mean"] == pytest.approx(math.exp(-0.2))
  assert "|" in lm_study.markdown(list(rows.values()))


def test_bad_arch_exits_2(capsys):
  assert lm_study.main(["--archs", "bk,rnn"]) == 2
  assert "--archs='bk,rnn' is invalid" in capsys.readouterr().err


def _forbid_training(monkeypatch, why: str):
  """Makes main() fail the test if it pins threads or trains (it must exit before)."""
  def no_training(*a, **k):
    raise AssertionError(why)
  monkeypatch.setattr(lm_study, "run_one", no_training)
  monkeypatch.setattr(lm_study.benchmarking, "pin_threads", no_training)


def _args(**kw):
  import argparse  # pylint: disable=g-import-not-at-top
  base = {"tokens_per_step": 1024, "vocab_size": 10000, "max_steps": 900, "min_steps": 450,
          "eval_every": 100, "eval_tokens": 8192, "eval_batch_size": 16, "plateau_tol": 0.01,
          "threads": 1, "decay_steps": 650, "end_lr_ratio": 0.01}
  base.update(kw)
  return argparse.Namespace(**base)


def test_protocol_of_fills_old_files_and_ignores_the_ratio_at_constant_lr():
  old = {"tokens_per_step": 1024, "max_steps": 700, "out": "x.json", "seq_lens": "128"}
  p = lm_study.protocol_of(old)
  assert set(p) == set(lm_study.PROTOCOL_KEYS)
  assert p["decay_steps"] == 0 and p["end_lr_ratio"] == 1.0 and p["max_steps"] == 700
  assert lm_study.protocol_of(_args(decay_steps=0, end_lr_ratio=0.01))["end_lr_ratio"] == 1.0
  assert lm_study.protocol_of(_args())["end_lr_ratio"] == 0.01


def test_one_protocol_per_n():
  a, b = lm_study.protocol_of(_args()), lm_study.protocol_of(_args(max_steps=1000))
  runs = [{"seq_len": 128, "arch": "bk", "seed": 0, "protocol": a},
          {"seq_len": 512, "arch": "bk", "seed": 0, "protocol": b}]
  assert lm_study.protocols_by_n(runs) == {128: a, 512: b}  # different N: allowed
  with pytest.raises(ValueError, match=r"runs at N=128 have different protocols .*max_steps"):
    lm_study.protocols_by_n(runs + [{"seq_len": 128, "arch": "lru", "seed": 1, "protocol": b}])


def test_resume_refuses_a_different_protocol_at_an_existing_n(tmp_path, capsys, monkeypatch):
  _forbid_training(monkeypatch, "trained although the protocol differs")
  out = tmp_path / "study.json"
  import json  # pylint: disable=g-import-not-at-top
  out.write_text(json.dumps({"protocol": {"tokens_per_step": 1024, "max_steps": 700},
                             "runs": [{"arch": "bk", "seq_len": 128, "seed": 0}]}))
  argv = ["--resume", "--out", str(out), "--seq-lens", "128", "--max-steps", "900"]
  assert lm_study.main(argv) == 2
  assert "runs at N=128 have different protocols" in capsys.readouterr().err


@pytest.mark.parametrize("argv, msg", [
    (["--decay-steps", "20"], "--decay-steps=20 is invalid: allowed 0 or 31..--max-steps=1500"),
    (["--decay-steps", "2000"], "--decay-steps=2000 is invalid"),
    (["--end-lr-ratio", "0"], "--end-lr-ratio=0.0 is invalid: allowed (0, 1]")])
def test_bad_schedule_exits_2(argv, msg, capsys):
  assert lm_study.main(argv) == 2
  assert msg in capsys.readouterr().err


def test_study_schedule_decays_then_holds():
  from bk import train as train_lib  # pylint: disable=g-import-not-at-top
  cfg = lm_study.study_config("bk", 512, 0, _args())
  assert cfg.data.batch_size == 2 and cfg.data.seq_len == 512
  _, lr = train_lib.make_optimizer(cfg)
  peak = cfg.optim.learning_rate
  assert float(lr(cfg.optim.warmup_steps)) == pytest.approx(peak)
  assert float(lr(340)) == pytest.approx(peak * (0.01 + 0.99 * 0.5), rel=1e-3)  # mid-decay
  for step in (650, 800, 900):
    assert float(lr(step)) == pytest.approx(0.01 * peak, rel=1e-4)
  _, lr = train_lib.make_optimizer(lm_study.study_config("transformer", 128, 0,
                                                         _args(decay_steps=0)))
  assert float(lr(900)) == pytest.approx(peak)  # constant after warm-up


def test_summary_carries_the_protocol_per_n_into_the_table():
  p = lm_study.protocol_of(_args())
  runs = [_run("bk", 0, [6.0, 5.5], 0.1), _run("transformer", 0, [5.8, 5.3], 0.2)]
  for r in runs:
    r["protocol"] = p
  rows = lm_study.summarize({"runs": runs})
  assert rows[0]["protocol"] == p
  md = lm_study.markdown(rows)
  assert "N = 128: corpus shakespeare, 1024 tokens/step, lr cosine to 0.01 x peak at step 650, then constant, cap 900" \
      in md


def test_tokens_per_step_must_be_a_multiple_of_n(tmp_path, capsys, monkeypatch):
  # 1024 tokens at N = 2048 used to become batch 1 = 2048 tokens while the protocol said 1024.
  _forbid_training(monkeypatch, "trained although tokens_per_step < N")
  argv = ["--seq-lens", "512,2048", "--tokens-per-step", "1024", "--out", str(tmp_path / "s.json")]
  assert lm_study.main(argv) == 2
  assert ("--tokens-per-step=1024 is invalid at N=2048: allowed a multiple of every --seq-lens "
          "(512,2048)") in capsys.readouterr().err
  with pytest.raises(ValueError, match="tokens_per_step=1024 is invalid at N=2048"):
    lm_study.study_config("bk", 2048, 0, _args(tokens_per_step=1024))
  assert lm_study.study_config("bk", 2048, 0, _args(tokens_per_step=2048)).data.batch_size == 1


def _wikitext_dir(root, seed=0):
  import numpy as np  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(seed)
  vocab = [f"w{i}" for i in range(30)]
  for s, n_lines in (("train", 200), ("valid", 40), ("test", 40)):
    lines = [" ".join(rng.choice(vocab, size=rng.integers(1, 10))) for _ in range(n_lines)]
    (root / f"wiki.{s}.tokens").write_text("\n".join(lines) + "\n")
  return root


def test_user_corpus_directory_reaches_the_runs_and_the_protocol(tmp_path, capsys, monkeypatch):
  corpus = _wikitext_dir(tmp_path)
  seen = []

  def fake_run(arch, n, seed, args, cache):  # what run_one would train on
    cfg = lm_study.study_config(arch, n, seed, args)
    data = cache[("data", cfg.data.vocab_size)]
    seen.append((cfg.data.corpus, cfg.data.path, data.tokenizer.vocab[:2], len(data.valid)))
    curve = [{"step": 1, "cpu_s": 0.1, "flops": 1.0, "val_loss": 3.0, "train_loss": 3.0}]
    return {"protocol": lm_study.protocol_of(args), "arch": arch, "seq_len": n, "seed": seed,
            "stop": "cap", "steps": 1, "curve": curve, "val_ppl_full": 20.0, "train_cpu_s": 0.1,
            "step_flops": 1.0, "params": {"total": 1, "non_embedding": 1,
                                         "active_non_embedding": 1}, "compile_cpu_s": 0.0,
            "load_start": 0.0, "load_end": 0.0}
  monkeypatch.setattr(lm_study, "run_one", fake_run)
  monkeypatch.setattr(lm_study.benchmarking, "pin_threads", lambda n: [0])
  monkeypatch.setattr(lm_study, "figure", lambda *a: None)
  out = tmp_path / "s.json"
  argv = ["--corpus", "wikitext", "--data-path", str(corpus), "--seq-lens", "8",
          "--tokens-per-step", "16", "--archs", "bk", "--seeds", "0", "--vocab-size", "20",
          "--max-steps", "40", "--out", str(out)]
  assert lm_study.main(argv) == 0
  n_valid = sum(len(l.split()) + 1 for l in (corpus / "wiki.valid.tokens").read_text().splitlines())
  assert seen == [("wikitext", str(corpus), ["<unk>", "<eos>"], n_valid)]
  import json  # pylint: disable=g-import-not-at-top
  result = json.loads(out.read_text())
  assert result["runs"][0]["protocol"]["corpus"] == "wikitext"
  assert "N = 8: corpus wikitext, 16 tokens/step" in out.with_suffix(".md").read_text()
  # Resuming the same file with the embedded corpus is refused: one protocol per N.
  capsys.readouterr()
  assert lm_study.main(argv[4:] + ["--resume"]) == 2
  assert "different protocols" in capsys.readouterr().err and "corpus" in out.read_text()


def test_bad_corpus_directory_exits_2_before_training(tmp_path, capsys, monkeypatch):
  _forbid_training(monkeypatch, "trained on a missing corpus")
  out = tmp_path / "s.json"
  assert lm_study.main(["--corpus", "wikitext", "--data-path", str(tmp_path / "nope"),
                        "--out", str(out)]) == 2
  err = capsys.readouterr().err.strip()
  assert len(err.splitlines()) == 1 and "--corpus=wikitext" in err and "is invalid" in err
  assert not out.exists()


def test_cap_below_the_warm_up_exits_2_with_one_line(tmp_path, capsys, monkeypatch):
  # Used to be a ConfigError traceback from inside the first run.
  _forbid_training(monkeypatch, "trained with a cap below the warm-up")
  assert lm_study.main(["--seq-lens", "64", "--max-steps", "4", "--out",
                        str(tmp_path / "s.json")]) == 2
  err = capsys.readouterr().err.strip()
  assert err == "lm_study: config.optim.warmup_steps=30 is invalid: allowed <= train.num_steps=4"
