"""JEPA train state, optimizer, target-encoder EMA and the pure train step."""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

from common import schedules
from common import train_state as train_state_lib
from jepa import data as data_lib
from jepa import loss as loss_lib
from jepa import masking
from jepa import model as model_lib

PyTree = Any


class EmaState(NamedTuple):
  """Target encoder = EMA of the context encoder; `count` = optimizer steps applied."""
  count: jax.Array
  params: PyTree


def ema_init(online_params: PyTree) -> EmaState:
  return EmaState(jnp.zeros([], jnp.int32), jax.tree.map(jnp.array, online_params))


def ema_update(state: EmaState, online_params: PyTree, momentum_fn: Callable) -> tuple[EmaState, jax.Array]:
  """target <- m * target + (1 - m) * online, with m = momentum_fn(count); once per optimizer step."""
  m = momentum_fn(state.count)
  params = jax.tree.map(lambda t, o: m * t + (1.0 - m) * jax.lax.stop_gradient(o), state.params,
                        online_params)
  return EmaState(state.count + 1, params), m


class JepaState(train_state_lib.TrainState):
  """TrainState (step, params = context encoder + predictor, opt_state, rng) + the EMA target."""
  target: EmaState


class Schedules(NamedTuple):
  learning_rate: Callable
  weight_decay: Callable
  ema: Callable


def make_schedules(config) -> Schedules:
  """Schedules over optimizer steps (derived quantities computed here, not in the config)."""
  total = config.train.num_steps
  warmup = int(round(config.optim.warmup_fraction * total))
  lr = schedules.warmup_cosine(config.optim.learning_rate, total, warmup, config.optim.end_learning_rate)
  wd = schedules.cosine_weight_decay(config.optim.weight_decay, config.optim.end_weight_decay, total)
  if config.ema.schedule == "linear":  # I-JEPA: m_t = m0 + (1 - m0) t / T
    ema = optax.linear_schedule(config.ema.start, config.ema.end, total)
  else:
    ema = schedules.ema_momentum(config.ema.start, config.ema.end, total)
  return Schedules(lr, wd, ema)


def decay_mask(params: PyTree) -> PyTree:
  """Weight decay on matrices only: biases, norm scales and the 1-D mask token are excluded."""
  return jax.tree.map(lambda p: p.ndim >= 2, params)


def make_optimizer(config, sched: Schedules) -> optax.GradientTransformation:
  parts = []
  if config.optim.grad_clip > 0:
    parts.append(optax.clip_by_global_norm(config.optim.grad_clip))
  parts.append(optax.adamw(sched.learning_rate, b1=config.optim.b1, b2=config.optim.b2,
                           weight_decay=sched.weight_decay, mask=decay_mask))
  return optax.chain(*parts)


def init_state(config, vit: model_lib.ViTConfig, hier: loss_lib.Hierarchy, tx, rng) -> JepaState:
  """Initial state; the target encoder starts as an exact copy of the context encoder."""
  model = model_lib.JEPA(vit, num_heads_out=hier.num_levels if hier.kind == "layers" else 1)
  k_init, k_run = jax.random.split(rng)
  budget = masking.mask_budget(vit.grid, config.mask)
  b = 2
  images = jnp.zeros((b, vit.image_size, vit.image_size, vit.channels), jnp.float32)
  ctx = jnp.zeros((b, budget.context_tokens), jnp.int32)
  tgt = jnp.zeros((b, budget.num_blocks, budget.max_target_tokens), jnp.int32)
  # One compiled program: op by op, init compiles ~200 small programs (8-10 s on a CPU).
  params = jax.jit(model.init)(k_init, images, ctx, ctx > 0, tgt, tgt >= 0)["params"]
  return JepaState.create(apply_fn=model.apply, params=params, tx=tx, rng=k_run,
                          target=ema_init(params["encoder"]))


def jepa_loss(params, target_params, images, masks, vit: model_lib.ViTConfig, hier: loss_lib.Hierarchy,
              loss_kind: str):
  """JEPA loss of one batch: images [B, H, W, C] (normalised), masks from `masking.sample_masks`.

  Targets: the EMA target encoder on the full image, layer-normed, stop-gradient. Predictions:
  the context encoder on the context tokens, then the predictor at each target block.
  Returns (total loss, aux metrics).
  """
  ctx_idx, ctx_valid, tgt_idx, tgt_valid = masks
  need_layers = hier.kind == "layers"
  target_encoder = model_lib.Encoder(vit)
  if need_layers:
    final, layers = target_encoder.apply({"params": target_params}, images, return_layers=True)
  else:
    final, layers = target_encoder.apply({"params": target_params}, images), ()
  targets = loss_lib.level_targets(final.astype(jnp.float32), [l.astype(jnp.float32) for l in layers], hier)
  preds = model_lib.JEPA(vit, hier.num_levels if need_layers else 1).apply(
      {"params": params}, images, ctx_idx, ctx_valid, tgt_idx, tgt_valid)
  total, per_level = loss_lib.hierarchical_loss(preds, targets, tgt_idx, tgt_valid, hier, loss_kind, vit.grid[1])
  aux = dict(per_level)
  aux["mask/context_tokens"] = ctx_valid.sum(-1).mean().astype(jnp.float32)
  aux["mask/target_tokens"] = tgt_valid.sum(-1).mean().astype(jnp.float32)
  return total, aux


def make_train_step(config, vit: model_lib.ViTConfig, hier: loss_lib.Hierarchy, sched: Schedules,
                    mean, std, augment: bool = True) -> Callable:
  """Returns train_step(state, batch) -> (state, metrics); batch = {"images": uint8 [B, H, W, C]}.

  augment=False: the images are already augmented views at the model resolution (streaming).

  Per micro-batch: augment, sample masks (in jit), target encoder (EMA, stop-gradient), context
  encoder + predictor, hierarchical loss. Gradients are averaged over micro-batches; then one
  optimizer step and one EMA update (after the step).
  """
  accum = config.optim.grad_accum_steps
  grid = vit.grid
  data_cfg, mask_cfg, loss_kind = config.data, config.mask, config.loss.kind

  def micro_loss(params, target_params, images_u8, key):
    k_aug, k_mask = jax.random.split(key)
    images = data_lib.normalize(images_u8, mean, std)
    if augment:  # in-memory datasets; streamed batches arrive cropped and flipped by the host
      images = data_lib.random_resized_crop(k_aug, images, vit.image_size, tuple(data_cfg.crop_scale),
                                            tuple(data_cfg.crop_ratio), data_cfg.hflip)
    masks = masking.sample_masks(k_mask, grid, images.shape[0], mask_cfg)
    return jepa_loss(params, target_params, images, masks, vit, hier, loss_kind)

  grad_fn = jax.value_and_grad(micro_loss, has_aux=True)

  def train_step(state: JepaState, batch):
    key = train_state_lib.step_rng(state)
    images = batch["images"]
    micro = images.reshape(accum, images.shape[0] // accum, *images.shape[1:])

    def body(carry, xs):
      i, imgs = xs
      (loss, aux), grads = grad_fn(state.params, state.target.params, imgs, jax.random.fold_in(key, i))
      carry = jax.tree.map(lambda a, g: a + g / accum, carry, grads)
      return carry, (loss, aux)

    zeros = jax.tree.map(jnp.zeros_like, state.params)
    if accum == 1:
      grads, (loss, aux) = body(zeros, (0, micro[0]))
    else:
      grads, (losses, auxs) = jax.lax.scan(body, zeros, (jnp.arange(accum), micro))
      loss, aux = losses.mean(), jax.tree.map(jnp.mean, auxs)
    new_state = state.apply_gradients(grads=grads)
    # EMA after the optimizer step, once per optimizer step (not per micro-batch).
    target, momentum = ema_update(state.target, new_state.params["encoder"], sched.ema)
    new_state = new_state.replace(target=target)
    step = state.step
    metrics = {"train/loss": loss, "train/grad_norm": optax.tree.norm(grads),
               "train/learning_rate": sched.learning_rate(step), "train/weight_decay": sched.weight_decay(step),
               "train/ema_momentum": momentum}
    metrics.update({f"train/{k}": v for k, v in aux.items()})
    return new_state, metrics

  return train_step


def pool_grid(grid_tokens: jax.Array, p: int) -> jax.Array:
  """Means over p x p windows of a [B, R, C, D] token grid, partial windows included.

  The last row/column of windows is partial when p does not divide the grid (7 x 7 patches, p = 4:
  windows of 16, 12, 12 and 9 tokens); each window is averaged over its valid tokens only, so
  every patch is monitored. Returns [B, ceil(R/p) * ceil(C/p), D] (row-major windows).
  """
  b, r, c, d = grid_tokens.shape
  pads = ((0, 0), (0, -r % p), (0, -c % p), (0, 0))
  window = lambda x: jax.lax.reduce_window(x, 0.0, jax.lax.add, (1, p, p, 1), (1, p, p, 1), pads)
  sums = window(grid_tokens)
  counts = window(jnp.ones((1, r, c, 1), grid_tokens.dtype))
  return (sums / counts).reshape(b, -1, d)


def make_feature_fn(vit: model_lib.ViTConfig, hier: loss_lib.Hierarchy, mean, std) -> Callable:
  """jitted (encoder params, uint8 images) -> {"pooled": [B, D], "pooled_last4": [B, <=4D], "level_l": [B, windows, D]}.

  Level features for collapse monitoring: kind=pool -> the encoder's tokens average-pooled over
  2^l x 2^l windows of the patch grid; kind=layers -> the chosen block's tokens.
  """
  encoder = model_lib.Encoder(vit)
  rows, cols = vit.grid

  @jax.jit
  def features(params, images_u8):
    images = data_lib.resize(data_lib.normalize(images_u8, mean, std), vit.image_size)
    final, layers = encoder.apply({"params": params}, images, return_layers=True)
    final = final.astype(jnp.float32)
    out = {"pooled": final.mean(1)}
    # Last-4-block features (the I-JEPA linear-eval recipe for deep ViTs): the final (normed) tokens
    # and the three blocks before it, each token layer-normed without parameters, mean-pooled, concat.
    ln = lambda x: (x - x.mean(-1, keepdims=True)) * jax.lax.rsqrt(x.var(-1, keepdims=True) + 1e-6)
    prev = [ln(x.astype(jnp.float32)).mean(1) for x in layers[:-1][-3:]]
    out["pooled_last4"] = jnp.concatenate([out["pooled"]] + prev, axis=-1)
    grid_tokens = final.reshape(final.shape[0], rows, cols, -1)
    for level in range(hier.num_levels):
      if hier.kind == "pool":
        out[f"level_{level}"] = pool_grid(grid_tokens, 2 ** level)
      else:
        l = hier.layers[level]
        out[f"level_{level}"] = final if l == vit.depth else layers[l - 1].astype(jnp.float32)
    return out

  return features
