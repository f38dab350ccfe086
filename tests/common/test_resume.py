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
  proc = run_toy(workdir, "--config.num_steps=50")
  assert "checkpoints/40 is unreadable" in proc.stderr
  assert "Resuming from step 30" in proc.stderr
  assert _records(workdir)[-1]["step"] == 50


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
  step = int(line[0].split("saved step ")[1].split(";")[0])
  assert 0 < step < 120
  assert step in _complete_steps(workdir / "checkpoints")
  proc2 = run_toy(workdir, variant="long")
  assert f"Resuming from step {step}" in proc2.stderr
  assert _records(workdir)[-1]["step"] == 120


def test_incompatible_config_stops_and_overwrites_nothing(tmp_path, run_toy):
  workdir = tmp_path / "run"
  run_toy(workdir)
  before = {p: os.path.getmtime(p) for p in glob.glob(str(workdir / "**"), recursive=True)}
  proc = run_toy(workdir, "--config.hidden=8", "--config.num_steps=60", check=False)
  assert proc.returncode == 2
  assert "does not match the current config" in proc.stderr
  assert "checkpoint shape (4, 32) != current shape (4, 8)" in proc.stderr
  after = {p: os.path.getmtime(p) for p in glob.glob(str(workdir / "**"), recursive=True)}
  assert before == after


def test_nan_guard_names_step_and_keeps_last_good_checkpoint(tmp_path, run_toy):
  workdir = tmp_path / "run"
  proc = run_toy(workdir, "--config.nan_at_step=13", check=False)
  assert proc.returncode != 0
  assert "metric 'train/loss' is nan at step 13" in proc.stderr
  assert _complete_steps(workdir / "checkpoints") == [10]
