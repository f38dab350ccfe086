"""Auto-resume: exact continuation, kill -9, corruption fallback, SIGTERM, incompatible config."""
import glob
import json
import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from tests.common import conftest, toy_config, toy_train


def _records(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [json.loads(line) for line in f]


def _config(**kw):
  c = toy_config.get_config()
  c.update(kw)
  return c


def test_resume_equals_uninterrupted_run(tmp_path):
  full, _ = toy_train.train_and_evaluate(_config(num_steps=40), str(tmp_path / "full"))
  toy_train.train_and_evaluate(_config(num_steps=20), str(tmp_path / "split"))
  resumed, _ = toy_train.train_and_evaluate(_config(num_steps=40), str(tmp_path / "split"))
  assert int(resumed.step) == 40
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-6), full.params,
               resumed.params)
  rec_full, rec_split = _records(tmp_path / "full"), _records(tmp_path / "split")
  drop = lambda rs: [{k: v for k, v in r.items() if not k.startswith("perf/")} for r in rs]
  assert [r["step"] for r in rec_full] == [r["step"] for r in rec_split]
  for a, b in zip(drop(rec_full)[-6:], drop(rec_split)[-6:]):
    assert a.keys() == b.keys()
    for k in a:
      np.testing.assert_allclose(a[k], b[k], rtol=1e-5, atol=1e-7, err_msg=k)
  # The run learned: the eval loss fell well below the variance of the target.
  evals = [r["eval/loss"] for r in rec_full if "eval/loss" in r]
  assert evals[-1] < 0.5 * evals[0]
  # Retention (latest 2 + best 1 by eval/loss) ranks checkpoints saved before the restart too:
  # the interrupted run keeps exactly what the uninterrupted one keeps.
  assert _complete_steps(tmp_path / "full" / "checkpoints") == [30, 40]
  assert _complete_steps(tmp_path / "split" / "checkpoints") == [30, 40]
  with open(tmp_path / "split" / "checkpoints" / "40" / "metrics" / "metrics") as f:
    assert json.load(f)["eval/loss"] == pytest.approx(evals[-1], rel=1e-5)


def _start_long(workdir, *overrides):
  env = dict(os.environ, PYTHONPATH=conftest.ROOT)
  return subprocess.Popen(conftest.toy_cmd(workdir, *overrides, variant="long"),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _complete_steps(ckpt_dir):
  return sorted(int(os.path.basename(p)) for p in glob.glob(os.path.join(ckpt_dir, "*"))
                if os.path.basename(p).isdigit())


@pytest.mark.slow
def test_kill9_during_save_then_resume(tmp_path, run_toy):
  workdir = tmp_path / "run"
  ckpt_dir = workdir / "checkpoints"
  proc = _start_long(workdir)
  deadline = time.time() + 120
  killed_during_save = False
  while time.time() < deadline and proc.poll() is None:
    names = os.listdir(ckpt_dir) if ckpt_dir.exists() else []
    if any("tmp" in n for n in names) and _complete_steps(ckpt_dir):
      proc.kill()  # SIGKILL while a checkpoint is being written
      killed_during_save = True
      break
    time.sleep(0.001)
  proc.wait()
  assert killed_during_save, "never caught a save in progress"
  complete = _complete_steps(ckpt_dir)
  assert complete, "no complete checkpoint before the kill"
  proc2 = run_toy(workdir, variant="long", check=True)
  assert f"Resuming from step {complete[-1]}" in proc2.stderr
  assert _records(workdir)[-1]["step"] == 120


def test_corrupted_latest_falls_back(tmp_path, run_toy):
  workdir = tmp_path / "run"
  run_toy(workdir)  # 40 steps; checkpoints 30 and 40 kept
  assert _complete_steps(workdir / "checkpoints") == [30, 40]
  for path in glob.glob(str(workdir / "checkpoints" / "40" / "state" / "**" / "d" / "*"),
                        recursive=True):
    with open(path, "r+b") as f:
      f.write(b"\x00garbage" * 8)
  proc = run_toy(workdir)
  assert "checkpoints/40 is unreadable" in proc.stderr
  assert "Resuming from step 30" in proc.stderr
  assert _records(workdir)[-1]["step"] == 40
  # The damaged step was moved aside (kept, never restored) and step 40 was saved again, so a
  # second rerun has nothing left to do.
  aside = glob.glob(str(workdir / "checkpoints" / "40.corrupt-*"))
  assert len(aside) == 1 and os.path.isdir(aside[0])
  assert _complete_steps(workdir / "checkpoints") == [30, 40]
  proc2 = run_toy(workdir)
  assert "unreadable" not in proc2.stderr
  assert "Resuming from step 40" in proc2.stderr


def test_fallback_to_step_0_keeps_the_history_aside(tmp_path):
  workdir = tmp_path / "run"
  config = _config(num_steps=30)
  config.checkpoint.keep_latest, config.checkpoint.keep_best = 1, 0
  toy_train.train_and_evaluate(config, str(workdir))
  old = _records(workdir)
  assert old[-1]["step"] == 30 and len(old) == 9
  with open(workdir / "results" / "final.json", "w") as f:  # a package's end-of-run summary
    json.dump({"status": "done", "step": 30}, f)
  for path in glob.glob(str(workdir / "checkpoints" / "30" / "state" / "**" / "d" / "*"),
                        recursive=True):
    with open(path, "r+b") as f:
      f.write(b"\x00garbage" * 8)
  config.num_steps = 10  # the rerun restarts from 0 (its only checkpoint is damaged)
  toy_train.train_and_evaluate(config, str(workdir))
  # Nothing was truncated: the earlier 9 records and the stale summary moved aside whole.
  [aside] = glob.glob(str(workdir / "superseded" / "*-resume-at-0"))
  with open(os.path.join(aside, "metrics.jsonl")) as f:
    assert [json.loads(l) for l in f] == old
  assert json.load(open(os.path.join(aside, "results", "final.json")))["step"] == 30
  assert not (workdir / "results" / "final.json").exists()
  # The live history describes the run the checkpoints now hold (steps 1..10).
  assert [r["step"] for r in _records(workdir)][-1] == 10
  hist = json.load(open(workdir / "results" / "training_history.json"))
  assert hist["train/loss"]["steps"] == [5, 10]
  assert _complete_steps(workdir / "checkpoints") == [10]


def test_config_change_on_resume_is_logged_and_every_config_kept(tmp_path, run_toy):
  workdir = tmp_path / "run"
  run_toy(workdir, "--config.num_steps=20")
  proc = run_toy(workdir, "--config.learning_rate=0.001")
  assert "Resuming from step 20" in proc.stderr
  assert "learning_rate: 0.05 → 0.001" in proc.stderr
  assert json.load(open(workdir / "config.json"))["learning_rate"] == 0.05
  assert json.load(open(workdir / "config.20.json"))["learning_rate"] == 0.001
  # The next resume compares with the latest config (config.20.json), not the first one.
  proc = run_toy(workdir, "--config.learning_rate=0.001", "--config.num_steps=50")
  assert "num_steps: 40 → 50" in proc.stderr and "learning_rate: 0.05" not in proc.stderr
  assert json.load(open(workdir / "config.40.json"))["num_steps"] == 50


def test_sigterm_saves_and_exits_zero(tmp_path, run_toy):
  workdir = tmp_path / "run"
  proc = _start_long(workdir)
  deadline = time.time() + 120
  while time.time() < deadline and not (workdir / "metrics.jsonl").exists():
    time.sleep(0.05)
  time.sleep(0.5)
  proc.send_signal(signal.SIGTERM)
  _, err = proc.communicate(timeout=120)
  assert proc.returncode == 0, err[-2000:]
  line = [l for l in err.splitlines() if "Preempted: saved step" in l]
  assert line, err[-2000:]
  step = int(line[0].split("saved step ")[1].split(" ")[0])
  assert 0 < step < 120
  assert step in _complete_steps(workdir / "checkpoints")
  proc2 = run_toy(workdir, variant="long")
  assert f"Resuming from step {step}" in proc2.stderr
  assert _records(workdir)[-1]["step"] == 120


def test_sigterm_while_steps_are_queued_saves_the_step_it_names(tmp_path, run_toy):
  """Steps heavy on the device queue behind the host (as on a GPU); the SIGTERM lands while the
  loop waits for their metrics. The run must save the step it stops at and name it."""
  workdir = tmp_path / "run"
  env = dict(os.environ, PYTHONPATH=conftest.ROOT)
  overrides = ["--config.step_sleep=0", "--config.device_work=12", "--config.log_every=20",
               "--config.checkpoint.save_every=1000", "--config.num_steps=400"]
  proc = subprocess.Popen(conftest.toy_cmd(workdir, *overrides, variant="long"),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
  deadline = time.time() + 120
  while time.time() < deadline and not (workdir / "metrics.jsonl").exists():
    time.sleep(0.02)
  time.sleep(0.5)
  proc.send_signal(signal.SIGTERM)
  _, err = proc.communicate(timeout=120)
  assert proc.returncode == 0, err[-2000:]
  line = [l for l in err.splitlines() if "Preempted: saved step" in l]
  assert line, err[-2000:]
  step = int(line[0].split("saved step ")[1].split(" ")[0])
  assert 20 <= step < 400
  assert _complete_steps(workdir / "checkpoints") == [step]
  assert "compiling the train step…" in err and "train step compiled and ran once in" in err
  proc2 = run_toy(workdir, *overrides[:-1], f"--config.num_steps={step + 2}", variant="long")
  assert f"Resuming from step {step}" in proc2.stderr
  assert _records(workdir)[-1]["step"] == step + 2


def test_incompatible_config_stops_and_overwrites_nothing(tmp_path, run_toy):
  workdir = tmp_path / "run"
  run_toy(workdir)
  before = {p: os.path.getmtime(p) for p in glob.glob(str(workdir / "**"), recursive=True)}
  proc = run_toy(workdir, "--config.hidden=8", "--config.num_steps=60", check=False)
  assert proc.returncode == 2
  # One line naming the config field first, then the arrays.
  err = [l for l in proc.stderr.splitlines() if l.startswith("error:")]
  assert len(err) == 1 and "Traceback" not in proc.stderr
  assert "hidden: 32 → 8" in err[0]
  assert "num_steps: 40 → 60" in err[0]
  assert "checkpoint shape (4, 32) != current shape (4, 8)" in err[0]
  after = {p: os.path.getmtime(p) for p in glob.glob(str(workdir / "**"), recursive=True)}
  assert before == after


def test_nan_guard_names_step_and_the_checkpoint_a_rerun_resumes_from(tmp_path, run_toy):
  workdir = tmp_path / "run"
  proc = run_toy(workdir, "--config.nan_at_step=13", check=False)
  assert proc.returncode == 2 and "Traceback" not in proc.stderr
  err = [l for l in proc.stderr.splitlines() if l.startswith("error:")]
  assert len(err) == 1
  assert "metric 'train/loss' is nan at step 13" in err[0]
  assert f"the last good checkpoint is step 10 ({workdir}/checkpoints/10)" in err[0]
  assert _complete_steps(workdir / "checkpoints") == [10]
  # The failing step's record is written before the stop (its NaN kept visible as a string).
  with open(workdir / "metrics.jsonl") as f:
    last = [json.loads(line) for line in f if line.strip()][-1]
  assert last["step"] == 13 and last["train/loss"] == "nan"
  proc = run_toy(tmp_path / "run2", "--config.nan_at_step=3", check=False)
  assert proc.returncode == 2
  assert "no checkpoint exists yet, so a rerun starts from step 0" in proc.stderr
  assert "last good checkpoint" not in proc.stderr
