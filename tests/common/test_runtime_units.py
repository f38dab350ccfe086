"""Units of the common runtime: retention, schedules, metric writer, configs, sharding, jraph."""
import csv
import importlib.util
import json
import logging
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import jraph
import numpy as np
import pytest

from common import checkpoint, config_validation as cv, metrics, plots, schedules
from tests.common import conftest, toy_config


@pytest.mark.parametrize("mode,losses,keep_latest,keep_best,expected", [
    # min: best two are steps 2 (0.5) and 1 (1.0); latest is 4.
    ("min", [1.0, 0.5, 2.0, 3.0], 1, 2, [1, 2, 4]),
    # max: best one is step 3 (2.0); latest two are 4 and 5.
    ("max", [1.0, 0.5, 2.0, 0.1, 0.2], 2, 1, [3, 4, 5]),
])
def test_retention_is_best_m_plus_latest_k(tmp_path, mode, losses, keep_latest, keep_best,
                                           expected):
  ckpt = checkpoint.Checkpointer(str(tmp_path), save_every=1, keep_latest=keep_latest,
                                 keep_best=keep_best, best_metric="val/loss", best_mode=mode,
                                 async_save=False)
  for step, loss in enumerate(losses, start=1):
    ckpt.save(step, {"w": jnp.full((2,), float(step))}, metrics={"val/loss": loss})
  ckpt.wait()
  assert ckpt.all_steps() == expected
  state, meta = ckpt.restore_latest({"w": jax.ShapeDtypeStruct((2,), jnp.float32)})
  np.testing.assert_array_equal(state["w"], [expected[-1]] * 2)
  ckpt.close()


def test_restore_with_meta_dependent_shapes(tmp_path):
  ckpt = checkpoint.Checkpointer(str(tmp_path), save_every=1, async_save=False)
  ckpt.save(3, {"layers": jnp.ones((5, 2))}, meta={"depth": 5})
  ckpt.wait()
  state, meta = ckpt.restore_latest(
      lambda m: {"layers": jax.ShapeDtypeStruct((m["depth"], 2), jnp.float32)})
  assert meta == {"depth": 5} and state["layers"].shape == (5, 2)


def test_inf_sentinel_restores_and_a_nan_checkpoint_is_moved_aside(tmp_path):
  """nsm keeps best_val_loss = inf until its first eval: a valid state, not damage."""
  ckpt = checkpoint.Checkpointer(str(tmp_path), save_every=1, keep_latest=2, async_save=False)
  ckpt.save(1, {"w": jnp.ones((2,)), "best": jnp.float32(jnp.inf)})
  ckpt.save(2, {"w": jnp.full((2,), jnp.nan), "best": jnp.float32(1.0)})
  ckpt.wait()
  abstract = {"w": jax.ShapeDtypeStruct((2,), jnp.float32),
              "best": jax.ShapeDtypeStruct((), jnp.float32)}
  state, _ = ckpt.restore_latest(abstract)
  assert state is not None and float(state["best"]) == np.inf
  assert ckpt.all_steps() == [1]
  assert [n for n in os.listdir(tmp_path) if n.startswith("2.corrupt-")]


def test_typed_prng_keys_are_refused_with_a_clear_error(tmp_path):
  ckpt = checkpoint.Checkpointer(str(tmp_path), save_every=1, async_save=False)
  with pytest.raises(ValueError, match=r"state leaves .*rng.* are typed PRNG keys"):
    ckpt.save(1, {"rng": jax.random.key(0)})
  assert ckpt.all_steps() == []


def test_empty_directory_starts_fresh(tmp_path):
  ckpt = checkpoint.Checkpointer(str(tmp_path), save_every=1)
  assert ckpt.restore_latest({"w": jax.ShapeDtypeStruct((2,), jnp.float32)}) == (None, None)


def test_warmup_cosine_values():
  s = schedules.warmup_cosine(1.0, total_steps=110, warmup_steps=10, end_value=0.1)
  np.testing.assert_allclose([s(0), s(5), s(10), s(60), s(110)],
                             [0.0, 0.5, 1.0, 0.55, 0.1], atol=1e-6)
  with pytest.raises(ValueError, match="warmup_steps=200"):
    schedules.warmup_cosine(1.0, total_steps=100, warmup_steps=200)


def test_ema_momentum_increases_from_start_to_end():
  m = schedules.ema_momentum(0.996, 1.0, total_steps=100)
  values = np.array([m(t) for t in range(0, 121, 10)])
  np.testing.assert_allclose(values[0], 0.996, atol=1e-7)
  np.testing.assert_allclose(values[5], 0.998, atol=1e-6)  # midpoint of the half cosine
  np.testing.assert_allclose(values[-3:], 1.0, atol=1e-7)
  assert np.all(np.diff(values) >= 0)
  with pytest.raises(ValueError, match="allowed 0 <= start <= end <= 1"):
    schedules.ema_momentum(1.0, 0.996, 10)


def test_metric_writer_records_tensorboard_and_history(tmp_path, caplog):
  config = toy_config.get_config()
  wandb_missing = importlib.util.find_spec("wandb") is None
  with caplog.at_level(logging.WARNING):
    w = metrics.MetricWriter(str(tmp_path), config=config, wandb=wandb_missing)
  # wandb enabled but not installed: one warning, and the run goes on.
  assert ("wandb is not installed" in caplog.text) == wandb_missing
  for step in (1, 2, 3):
    w.write_scalars(step, {"train/loss": 1.0 / step, "val/loss": 2.0 / step})
  hist = w.export_history(str(tmp_path / "results"))
  np.testing.assert_allclose(hist["train/loss"][1], [1.0, 0.5, 1 / 3])
  w.close()
  assert json.load(open(tmp_path / "config.json"))["batch_size"] == config.batch_size
  saved = json.load(open(tmp_path / "results" / "training_history.json"))
  assert saved["val/loss"]["steps"] == [1, 2, 3]
  npz = np.load(tmp_path / "results" / "training_history.npz")
  np.testing.assert_allclose(npz["val__loss__values"], [2.0, 1.0, 2 / 3])
  assert any(f.startswith("events.out.tfevents") for f in os.listdir(tmp_path / "tb"))
  # CSV beside the JSON: one row per step, one column per metric.
  with open(tmp_path / "results" / "training_history.csv") as f:
    rows = list(csv.reader(f))
  assert rows[0] == ["step", "train/loss", "val/loss"]
  assert [float(x) for x in rows[2]] == [2.0, 0.5, 1.0]
  # TensorBoard itself (the [tb] / [test] extra) reads the events tensorboardX wrote.
  from tensorboard.backend.event_processing import event_accumulator
  acc = event_accumulator.EventAccumulator(str(tmp_path / "tb"))
  acc.Reload()
  assert [e.step for e in acc.Scalars("val/loss")] == [1, 2, 3]
  np.testing.assert_allclose([e.value for e in acc.Scalars("val/loss")], [2.0, 1.0, 2 / 3],
                             rtol=1e-6)
  # Resuming at step 2: the history describes steps 1-2; the old file, with step 3, is kept aside.
  w2 = metrics.MetricWriter(str(tmp_path), resume_step=2, tensorboard=False)
  assert [r["step"] for r in w2.records] == [1, 2]
  [aside] = os.listdir(tmp_path / "superseded")
  with open(tmp_path / "superseded" / aside / "metrics.jsonl") as f:
    assert [json.loads(l)["step"] for l in f] == [1, 2, 3]
  assert json.load(open(tmp_path / "results" / "training_history.json"))["val/loss"]["steps"] == [1, 2]
  png = plots.dashboard(w2.history(), str(tmp_path / "dash.png"), events=[(2, "grow")])
  assert os.path.getsize(png) > 1000


def test_config_validation_messages():
  c = toy_config.get_config()
  c.learning_rate = -1.0
  with pytest.raises(cv.ConfigError, match=r"config.learning_rate=-1.0 is invalid: allowed a number > 0"):
    cv.check_positive(c, "learning_rate")
  with pytest.raises(cv.ConfigError, match=r"config.checkpoint.save_every=10 is invalid: allowed one of \[1, 2\]"):
    cv.check_in(c, "checkpoint.save_every", [1, 2])
  with pytest.raises(cv.ConfigError, match=r"config.nope is missing"):
    cv.check_positive(c, "nope")
  with pytest.raises(cv.ConfigError, match=r"allowed a number in \(0, 1\]"):
    cv.check_range(c, "learning_rate", 0, 1, lo_open=True)


@pytest.mark.parametrize("args,message", [
    (["--config.learning_rate=-1"], "config.learning_rate=-1.0 is invalid: allowed a number > 0"),
    (["--config.lerning_rate=0.1"], "--config.lerning_rate=0.1: the config has no field "
     "'lerning_rate'. Did you mean \"learning_rate\" instead of \"lerning_rate\"?"),
    (["--config.checkpoint.sve_every=3"], "Did you mean \"save_every\""),
    (["--config.batch_size=abc"], "--config.batch_size=abc: invalid literal for int()"),
    ([":bogus"], "unknown variant 'bogus': allowed ['default', 'long']"),
    (["MISSING"], "no such config file"),
])
def test_bad_config_is_one_line_and_exit_code_2(tmp_path, args, message):
  cmd = conftest.toy_cmd(tmp_path / "w")
  if args[0].startswith(":"):
    cmd[2] += args[0]
  elif args[0] == "MISSING":
    cmd[2] = f"--config={tmp_path}/nope.py:quick"
  else:
    cmd += args
  proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                        env=dict(os.environ, PYTHONPATH=conftest.ROOT))
  assert proc.returncode == 2, proc.stderr[-2000:]
  assert "Traceback" not in proc.stderr
  errors = [l for l in proc.stderr.splitlines() if l.startswith("error:")]
  assert len(errors) == 1 and message in errors[0], proc.stderr[-2000:]
  assert not (tmp_path / "w" / "checkpoints").exists()


def test_workdir_that_is_a_file_is_one_line_and_exit_code_2(tmp_path):
  target = tmp_path / "afile"
  target.write_text("keep me")
  proc = subprocess.run(conftest.toy_cmd(target), capture_output=True, text=True, timeout=120,
                        env=dict(os.environ, PYTHONPATH=conftest.ROOT))
  assert proc.returncode == 2 and "Traceback" not in proc.stderr
  assert f"error: --workdir={target} is a file: allowed a directory" in proc.stderr
  assert target.read_text() == "keep me"


def test_read_only_workdir_fails_before_anything_is_restored(tmp_path, monkeypatch, capsys):
  from common import cli, workdir as workdir_lib
  workdir = tmp_path / "ro"
  (workdir / "checkpoints").mkdir(parents=True)
  if os.geteuid() != 0:  # a real read-only directory (root may write anyway)
    os.chmod(workdir, 0o555)
  else:
    real = workdir_lib._probe_write
    monkeypatch.setattr(workdir_lib, "_probe_write", lambda d: (_ for _ in ()).throw(
        PermissionError(13, "Read-only file system")) if str(d).startswith(str(workdir)) else real(d))
  called = []
  with pytest.raises(SystemExit) as exit_info:
    cli.main_body(lambda c, w: called.append(w), toy_config.get_config(), str(workdir))
  os.chmod(workdir, 0o755)
  assert exit_info.value.code == 2 and called == []
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and err[0].startswith(f"error: --workdir={workdir} is not writable")


SHARDING_SCRIPT = r"""
import jax, numpy as np, optax, jax.numpy as jnp
from common import sharding, loop
from common.train_state import TrainState
from tests.common import toy_config, toy_train
assert jax.device_count() == 4, jax.devices()
config = toy_config.get_config()
model = toy_train.MLP(config.hidden)
sched = lambda s: 0.05
def run(devices):
  mesh = sharding.make_mesh(devices)
  key = jax.random.PRNGKey(0)
  state = TrainState.create(apply_fn=model.apply, params=model.init(key, jnp.zeros((1, 4))),
                            tx=optax.adam(0.05), rng=key)
  state = jax.device_put(state, sharding.replicated(mesh))
  step = loop.jit_train_step(toy_train.make_train_step(config, model, sched), mesh)
  batch_fn = toy_train.batch_fn_for(config)
  for i in range(5):
    state, m = step(state, sharding.shard_batch(batch_fn(i), mesh))
  return float(m["train/loss"]), jax.device_get(state.params), state
l4, p4, s4 = run(jax.devices())
l1, p1, _ = run(jax.devices()[:1])
assert len(s4.params["params"]["Dense_0"]["kernel"].sharding.device_set) == 4
np.testing.assert_allclose(l4, l1, rtol=1e-5)
jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-5), p4, p1)
print("SHARDING-OK", l4, l1)
"""


def test_data_parallel_step_matches_single_device():
  env = dict(os.environ, PYTHONPATH=conftest.ROOT,
             XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu")
  proc = subprocess.run([sys.executable, "-c", SHARDING_SCRIPT], capture_output=True, text=True,
                        env=env, timeout=180)
  assert proc.returncode == 0 and "SHARDING-OK" in proc.stdout, proc.stderr[-3000:]


def test_jraph_graphs_batching_padding_and_masks():
  """The parts of jraph 0.0.6.dev0 this codebase relies on (its zero_out_padding crashes)."""
  g = lambda n, e: jraph.GraphsTuple(
      nodes=np.arange(n, dtype=np.float32)[:, None], edges=np.ones((e, 1), np.float32),
      senders=np.arange(e) % n, receivers=(np.arange(e) + 1) % n,
      n_node=np.array([n]), n_edge=np.array([e]), globals=None)
  batch = jraph.batch([g(3, 2), g(2, 4)])
  np.testing.assert_array_equal(batch.senders, [0, 1, 3, 4, 3, 4])  # offsets by 3 nodes
  padded = jraph.pad_with_graphs(batch, n_node=8, n_edge=10, n_graph=4)
  assert padded.nodes.shape == (8, 1) and padded.senders.shape == (10,)
  np.testing.assert_array_equal(jraph.get_node_padding_mask(padded), [1] * 5 + [0] * 3)
  np.testing.assert_array_equal(jraph.get_graph_padding_mask(padded), [1, 1, 0, 0])
  np.testing.assert_array_equal(jraph.get_edge_padding_mask(padded), [1] * 6 + [0] * 4)
  # Per-graph sums by segment_sum over the padded batch: padding graphs get 0.
  graph_idx = jnp.repeat(jnp.arange(4), padded.n_node, total_repeat_length=8)
  sums = jax.ops.segment_sum(padded.nodes[:, 0], graph_idx, num_segments=4)
  np.testing.assert_allclose(sums, [3.0, 1.0, 0.0, 0.0])
  unbatched = jraph.unbatch(batch)
  assert [int(x.n_node[0]) for x in unbatched] == [3, 2]


def test_every_package_config_has_the_same_wandb_fields(tmp_path, caplog):
  import importlib
  blocks = {}
  for pkg in ("bk", "g2", "growth", "jepa", "nsm"):
    c = importlib.import_module(f"configs.{pkg}").get_config()
    blocks[pkg] = {k: type(v) for k, v in c.wandb.items()}
  assert all(b == blocks["bk"] for b in blocks.values()), blocks
  assert blocks["bk"] == {"enabled": bool, "project": str, "entity": str, "name": str}
  # The writer follows config.wandb.enabled (no per-package code).
  c = importlib.import_module("configs.bk").get_config()
  c.wandb.enabled = True
  if importlib.util.find_spec("wandb") is None:
    with caplog.at_level(logging.WARNING):
      metrics.MetricWriter(str(tmp_path), config=c, tensorboard=False).close()
    assert "wandb is not installed" in caplog.text


def test_fresh_state_step_is_strongly_typed_like_a_restored_one():
  """restore_or_init without a checkpoint: step is a strong int32, so resume reuses the program."""
  import optax
  from common import loop
  from common import train_state
  state, _, start = loop.restore_or_init(None, lambda: train_state.TrainState.create(
      apply_fn=None, params={"w": jnp.zeros(3)}, tx=optax.sgd(0.1), rng=jax.random.key(0)))
  assert start == 0 and state.step.dtype == jnp.int32 and not state.step.weak_type
