"""A tiny real model on the common runtime: an MLP learning y = sin(x·w) (used by the tests)."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import flax.linen as nn  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

from common import checkpoint, config_validation as cv, loop, metrics, plots, schedules  # noqa: E402
from common import sharding  # noqa: E402
from common.train_state import TrainState, step_rng  # noqa: E402

W_TRUE = np.linspace(-1.0, 1.0, 4).astype(np.float32)


class MLP(nn.Module):
  hidden: int

  @nn.compact
  def __call__(self, x):
    return nn.Dense(1)(nn.tanh(nn.Dense(self.hidden)(x)))[..., 0]


def batch_fn_for(config):
  def batch_fn(step):
    rng = np.random.default_rng([config.seed, step])
    x = rng.normal(size=(config.batch_size, 4)).astype(np.float32)
    return {"x": x, "y": np.sin(x @ W_TRUE)}
  return batch_fn


def make_train_step(config, model, schedule):
  def train_step(state, batch):
    noise_key = step_rng(state)

    def loss_fn(params):
      pred = model.apply(params, batch["x"])
      # A tiny input jitter from the per-step key: exercises fold_in(rng, step) determinism.
      pred = pred + 1e-3 * jax.random.normal(noise_key, pred.shape)
      loss = jnp.mean((pred - batch["y"]) ** 2)
      if config.device_work:
        # Device time that the host does not wait for: dispatched steps queue up (as on a GPU).
        m = jnp.full((384, 384), 1e-3) * jnp.mean(batch["x"])
        for _ in range(config.device_work):
          m = jnp.tanh(m @ m)
        loss = loss + 0.0 * jax.lax.stop_gradient(jnp.mean(m))
      if config.nan_at_step >= 0:
        loss = jnp.where(state.step + 1 >= config.nan_at_step, jnp.nan, loss)
      return loss

    loss, grads = jax.value_and_grad(loss_fn)(state.params)
    state = state.apply_gradients(grads=grads)
    return state, {"train/loss": loss, "train/lr": schedule(state.step - 1)}
  return train_step


def train_and_evaluate(config, workdir):
  cv.check_positive(config, "learning_rate")
  cv.check_int(config, "num_steps", min_value=1)
  cv.check_int(config, "batch_size", min_value=1)
  cv.check_int(config, "hidden", min_value=1)
  mesh = sharding.make_mesh()
  model = MLP(config.hidden)
  schedule = schedules.warmup_cosine(config.learning_rate, config.schedule_steps,
                                     config.warmup_steps)
  tx = optax.adam(schedule)

  def init_fn():
    key = jax.random.PRNGKey(config.seed)
    params = model.init(key, jnp.zeros((1, 4)))
    return TrainState.create(apply_fn=model.apply, params=params, tx=tx,
                             rng=jax.random.fold_in(key, 1))

  ckpt = checkpoint.Checkpointer(
      os.path.join(workdir, "checkpoints"), save_every=config.checkpoint.save_every,
      keep_latest=config.checkpoint.keep_latest, keep_best=config.checkpoint.keep_best,
      best_metric="eval/loss", async_save=config.checkpoint.async_save)
  state, _, start = loop.restore_or_init(ckpt, init_fn, mesh=mesh)
  writer = metrics.MetricWriter(workdir, config=config, resume_step=start)
  step_fn = make_train_step(config, model, schedule)
  if config.step_sleep:
    jitted = loop.jit_train_step(step_fn, mesh)

    def train_step(state, batch):
      time.sleep(config.step_sleep)
      return jitted(state, batch)
  else:
    train_step = loop.jit_train_step(step_fn, mesh)
  xe = np.random.default_rng(123).normal(size=(256, 4)).astype(np.float32)
  ye = np.sin(xe @ W_TRUE)

  def eval_fn(state, step):
    return {"eval/loss": float(jnp.mean((model.apply(state.params, xe) - ye) ** 2))}

  def plot_fn(step):
    plots.dashboard(writer.history(), os.path.join(workdir, "results", "dashboard.png"))

  state, status = loop.run(
      state, train_step, batch_fn_for(config), start_step=start, num_steps=config.num_steps,
      writer=writer, checkpointer=ckpt, log_every=config.log_every, eval_every=config.eval_every,
      eval_fn=eval_fn, plot_fn=plot_fn, mesh=mesh)
  writer.export_history(os.path.join(workdir, "results"))
  writer.close()
  ckpt.close()
  return state, status


if __name__ == "__main__":
  from common import cli
  cli.run(train_and_evaluate)
