"""Depth-growth strategies: (params, opt_state, history) -> (new params, new opt_state).

* `geometric`: AIether: the new block is extrapolated from the frontier block's trajectory.
* `copy`: duplicate the frontier block (= geometric with beta0 = gamma0 = eta0 = 0).
* `zero`: fresh block with zeroed output projections (attn_c_proj, mlp_c_proj kernel and bias);
  a pre-LN residual block then computes the identity, so growth is function-preserving.
* `random`: fresh block from the model's own initialiser.
* `stack`: G_stack: the whole stack duplicated `stack_factor` times (depth x g).
* `msg`: MSG-style masked growth (Yao et al. 2024): a fresh block mixed in as
  x + m * (block(x) - x), with the mask m ramped linearly 0 -> 1 over `ramp_steps` steps after
  the growth (steps.block_mix; the controller runs the ramp). m = 0 at insertion: function
  preserving whatever the new weights are.

`position="below"` inserts the new block under all existing blocks, next to the embeddings (the
original AIether); `"above"` puts it on top. The frontier (the block whose trajectory is recorded
and copied/extrapolated) is the most recently inserted one: block_0 for below, the top for above.
Old blocks keep their parameters and optimizer moments bit-exactly; new blocks get fresh
moments with their own bias-correction count (see optim.py).
"""
from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import optax

from growth import geometry
from growth import model as model_lib
from growth import optim

PyTree = Any
STRATEGIES = ("geometric", "copy", "zero", "random", "stack", "msg")
POSITIONS = ("below", "above")
OUTPUT_PROJECTIONS = ("attn_c_proj", "mlp_c_proj")


@dataclasses.dataclass(frozen=True)
class GrowthSpec:
  strategy: str = "geometric"
  position: str = "below"
  stack_factor: int = 2
  extrapolation: geometry.ExtrapolationConfig = geometry.ExtrapolationConfig()

  def __post_init__(self):
    if self.strategy not in STRATEGIES:
      raise ValueError(f"config.growth.strategy={self.strategy!r} is invalid: allowed one of "
                       f"{STRATEGIES}")
    if self.position not in POSITIONS:
      raise ValueError(f"config.growth.position={self.position!r} is invalid: allowed one of "
                       f"{POSITIONS}")
    if int(self.stack_factor) < 2:
      raise ValueError(f"config.growth.stack_factor={self.stack_factor!r} is invalid: allowed "
                       "an int >= 2")


def frontier_name(params: PyTree, position: str) -> str:
  names = model_lib.block_names(params)
  return names[0] if position == "below" else names[-1]


def zero_output_projections(block: PyTree) -> PyTree:
  block = dict(block)
  for name in OUTPUT_PROJECTIONS:
    block[name] = jax.tree.map(jnp.zeros_like, block[name])
  return block


def new_block(spec: GrowthSpec, params: PyTree, history: geometry.HistoryState | None,
              cfg: model_lib.GPTConfig, rng: jax.Array) -> tuple[PyTree, dict]:
  """Parameters of the block to insert (single-block strategies) and growth metrics."""
  front = params[frontier_name(params, spec.position)]
  if spec.strategy == "copy":
    return jax.tree.map(jnp.copy, front), {}
  if spec.strategy == "zero":
    return zero_output_projections(model_lib.init_block(cfg, rng)), {}
  if spec.strategy in ("random", "msg"):
    return model_lib.init_block(cfg, rng), {}
  if spec.strategy == "geometric":
    if history is None or int(history.count) < 2:
      # Not enough trajectory: copy the last frame (as the original's GrowthManager).
      return jax.tree.map(jnp.copy, front), {"geometry/snapshots": 0.0}
    view = geometry.history_view(history)
    block, metrics = geometry.extrapolate_tree(view, spec.extrapolation)
    block = jax.tree.map(lambda b, f: b.astype(f.dtype), block, front)
    out = {f"geometry/{k}": v for k, v in metrics.items()}
    out["geometry/snapshots"] = float(history.count)
    return block, out
  raise ValueError(f"strategy {spec.strategy!r} has no single new block")


def insert_block(params: PyTree, block: PyTree, position: str) -> tuple[PyTree, dict[str, str]]:
  """Grown params and the old -> new block-name map."""
  names = model_lib.block_names(params)
  shift = 1 if position == "below" else 0
  rename = {n: model_lib.block_name(i + shift) for i, n in enumerate(names)}
  out = {k: v for k, v in params.items() if k not in rename}
  out.update({rename[n]: params[n] for n in names})
  out[model_lib.block_name(0 if position == "below" else len(names))] = block
  return out, rename


def stack_blocks(params: PyTree, factor: int) -> tuple[PyTree, dict[str, str]]:
  """G_stack: blocks [b_0..b_{L-1}] -> [b_0..b_{L-1}] * factor (copies above the originals)."""
  names = model_lib.block_names(params)
  out = dict(params)
  for r in range(1, factor):
    for i, n in enumerate(names):
      out[model_lib.block_name(r * len(names) + i)] = jax.tree.map(jnp.copy, params[n])
  return out, {n: n for n in names}


def grow(spec: GrowthSpec, params: PyTree, opt_state: PyTree, history: geometry.HistoryState | None,
         *, tx: optax.GradientTransformation, cfg: model_lib.GPTConfig,
         rng: jax.Array) -> tuple[PyTree, PyTree, dict]:
  """One growth event. Returns (new params, new opt_state, info) with info["new_blocks"]."""
  params = dict(params)
  depth = model_lib.depth_of(params)
  if spec.strategy == "stack":
    new_params, rename = stack_blocks(params, int(spec.stack_factor))
    metrics = {}
  else:
    block, metrics = new_block(spec, params, history, cfg, rng)
    new_params, rename = insert_block(params, block, spec.position)
  new_names = sorted(set(model_lib.block_names(new_params)) - set(rename.values()),
                     key=lambda n: int(n.split("_")[1]))
  new_opt = optim.rebuild_opt_state(tx, opt_state, new_params, rename)
  info = {"depth_before": depth, "depth_after": model_lib.depth_of(new_params),
          "new_blocks": new_names, "metrics": metrics}
  return new_params, new_opt, info
