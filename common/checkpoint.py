"""Orbax checkpointing with auto-resume: latest K + best M, atomic saves, corrupt-checkpoint fallback."""
from __future__ import annotations

import os
import time
from typing import Any, Callable, Mapping

import jax
import numpy as np
import orbax.checkpoint as ocp
from absl import logging
from orbax.checkpoint import checkpoint_managers as ocm

PyTree = Any


class IncompatibleCheckpointError(ValueError):
  """A checkpoint in the workdir does not match the current config's state (shapes/structure)."""


@jax.jit
def _any_nan(leaves):
  """Per leaf: does it hold a NaN? One program for the whole state (leaf by leaf, every shape
  compiled its own pair of small programs)."""
  return jax.numpy.stack([jax.numpy.any(jax.numpy.isnan(v)) for v in leaves])


def _abstract(tree: PyTree, sharding) -> PyTree:
  """ShapeDtypeStructs carrying a sharding (replicated by default), as Orbax restore wants."""

  def leaf(x):
    if not hasattr(x, "shape"):
      return x
    s = getattr(x, "sharding", None) or sharding
    return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s)

  return jax.tree.map(leaf, tree)


def _canonical_path(path) -> str:
  """'params/Dense_0/kernel' whatever the containers (dict, list, namedtuple, dataclass)."""
  parts = []
  for k in path:
    for attr in ("key", "idx", "name"):
      if hasattr(k, attr):
        parts.append(str(getattr(k, attr)))
        break
    else:
      parts.append(str(k))
  return "/".join(parts)


def _shape_mismatches(saved_meta: PyTree, abstract: PyTree) -> list[str]:
  """Differences in tree structure or leaf shapes between a saved checkpoint and the state."""
  leaves = lambda t: {_canonical_path(p): tuple(getattr(v, "shape", ()) or ())
                      for p, v in jax.tree_util.tree_leaves_with_path(t)}
  saved, want = leaves(saved_meta), leaves(abstract)
  problems = []
  for k in sorted(set(saved) | set(want)):
    if k not in saved:
      problems.append(f"{k}: missing in checkpoint (state has shape {want[k]})")
    elif k not in want:
      problems.append(f"{k}: in checkpoint (shape {saved[k]}) but not in the current state")
    elif saved[k] != want[k]:
      problems.append(f"{k}: checkpoint shape {saved[k]} != current shape {want[k]}")
  return problems


def _resource_error(e: Exception) -> bool:
  """Out of memory while restoring: not a damaged checkpoint, so never moved aside."""
  return isinstance(e, MemoryError) or "RESOURCE_EXHAUSTED" in str(e) or "out of memory" in str(e).lower()


class Checkpointer:
  """Saves every `save_every` steps; keeps the latest `keep_latest` plus the best `keep_best`.

  Saves are atomic (Orbax writes a temporary directory and renames it when complete), so a crash
  mid-save leaves nothing that `restore_latest` would load. `best_metric` names a key of the
  `metrics` passed to `save`; `best_mode` is "min" or "max".
  """

  def __init__(self, directory: str, *, save_every: int, keep_latest: int = 1, keep_best: int = 0,
               best_metric: str | None = None, best_mode: str = "min", async_save: bool = True):
    if save_every <= 0:
      raise ValueError(f"checkpoint save_every={save_every!r} is invalid: allowed an integer > 0")
    if keep_latest < 1:
      raise ValueError(f"checkpoint keep_latest={keep_latest!r} is invalid: allowed an integer >= 1")
    if keep_best < 0:
      raise ValueError(f"checkpoint keep_best={keep_best!r} is invalid: allowed an integer >= 0")
    if best_mode not in ("min", "max"):
      raise ValueError(f"checkpoint best_mode={best_mode!r} is invalid: allowed 'min' or 'max'")
    if keep_best and not best_metric:
      raise ValueError("checkpoint keep_best > 0 needs best_metric: the metric name to rank by")
    self.directory = os.path.abspath(directory)
    self.save_every = save_every
    self.best_metric = best_metric if keep_best else None
    self.best_mode = best_mode
    policies = [ocm.LatestN(n=keep_latest)]
    best_fn = None
    if keep_best:
      best_fn = lambda m: m[best_metric]  # noqa: E731
      policies.append(ocm.BestN(get_metric_fn=best_fn, reverse=best_mode == "min", n=keep_best))
    options = ocp.CheckpointManagerOptions(
        preservation_policy=ocm.AnyPreservationPolicy(policies),
        # best_fn makes Orbax write each checkpoint's metrics next to it (`<step>/metrics`), so a
        # restarted run still ranks the older checkpoints; without it BestN sees none and keeps all.
        best_fn=best_fn, best_mode=best_mode,
        enable_async_checkpointing=async_save,
        cleanup_tmp_directories=True,
        create=True)
    registry = ocp.handlers.DefaultCheckpointHandlerRegistry()
    for args_cls in (ocp.args.StandardSave, ocp.args.StandardRestore):
      registry.add("state", args_cls, ocp.StandardCheckpointHandler)
    for args_cls in (ocp.args.JsonSave, ocp.args.JsonRestore):
      registry.add("meta", args_cls, ocp.JsonCheckpointHandler)
    self._manager = ocp.CheckpointManager(self.directory, options=options,
                                          handler_registry=registry)

  def all_steps(self) -> list[int]:
    return sorted(self._manager.all_steps())

  def should_save(self, step: int) -> bool:
    return step % self.save_every == 0

  def save(self, step: int, state: PyTree, *, metrics: Mapping[str, Any] | None = None,
           meta: Mapping[str, Any] | None = None, force: bool = False) -> bool:
    """Saves `state` (+ JSON `meta`) at `step` when due or forced. Returns whether it saved."""
    if not (force or self.should_save(step)) or step in self._manager.all_steps():
      return False
    typed_keys = [jax.tree_util.keystr(p) for p, v in jax.tree_util.tree_leaves_with_path(state)
                  if hasattr(v, "dtype") and jax.dtypes.issubdtype(v.dtype, jax.dtypes.prng_key)]
    if typed_keys:
      raise ValueError(f"state leaves {typed_keys} are typed PRNG keys, which do not round-trip "
                       "through the checkpoint: allowed raw uint32 keys (jax.random.PRNGKey or "
                       "jax.random.key_data(key))")
    ckpt_metrics = None
    if self.best_metric is not None:
      value = None if metrics is None else metrics.get(self.best_metric)
      if value is None:
        # Not evaluated at this step: rank it last so it is kept only as a latest checkpoint.
        value = np.inf if self.best_mode == "min" else -np.inf
      ckpt_metrics = {self.best_metric: float(np.asarray(value))}
    self._manager.save(
        step,
        args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                meta=ocp.args.JsonSave(dict(meta or {}))),
        metrics=ckpt_metrics, force=True)
    return True

  def restore_latest(self, abstract_state: PyTree | Callable[[dict], PyTree], *,
                     sharding=None) -> tuple[PyTree | None, dict | None]:
    """Restores the newest readable checkpoint into the current config's abstract state.

    `abstract_state`: a pytree of ShapeDtypeStructs (jax.eval_shape of the init function) or a
    callable meta -> such a pytree (for states whose shapes depend on saved metadata).
    Moves unreadable checkpoints aside (`<step>.corrupt-<time>`, with a warning naming each) and
    falls back to the previous one; returns (None, None) when none is valid. Raises IncompatibleCheckpointError when a readable checkpoint does not match.
    """
    if sharding is None:
      from common import sharding as sharding_lib
      sharding = sharding_lib.replicated(sharding_lib.make_mesh())
    for step in reversed(self.all_steps()):
      try:
        meta = self._manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))
        meta = dict(meta["meta"] or {})
        saved_tree = self._manager.item_metadata(step)["state"]
        if saved_tree is None:
          raise ValueError("no state metadata")
      except Exception as e:  # Unreadable metadata: a damaged checkpoint.
        if _resource_error(e):
          raise
        self._move_aside(step, e)
        continue
      # Outside the try: a failure here is a bug or a config change, not a damaged checkpoint.
      target = abstract_state(meta) if callable(abstract_state) else abstract_state
      problems = _shape_mismatches(getattr(saved_tree, "tree", saved_tree), target)
      if problems:
        raise IncompatibleCheckpointError(
            f"checkpoint {self.directory}/{step} does not match the current config "
            f"({len(problems)} differences; first: {'; '.join(problems[:3])}). Use another "
            "--workdir or the config that wrote it; nothing was overwritten.")
      try:
        restored = self._manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(_abstract(target, sharding))))
        state = restored["state"]
        jax.block_until_ready(state)
        # NaN marks damage (training stops before a NaN reaches a checkpoint); +-inf does not:
        # states hold legitimate sentinels such as best_val_loss = inf before the first eval.
        inexact = [(p, v) for p, v in jax.tree_util.tree_leaves_with_path(state)
                   if hasattr(v, "dtype") and jax.numpy.issubdtype(v.dtype, jax.numpy.inexact)]
        has_nan = np.asarray(_any_nan([v for _, v in inexact])) if inexact else []
        bad = [jax.tree_util.keystr(p) for (p, _), b in zip(inexact, has_nan) if b]
        if bad:
          raise ValueError(f"NaN values in {bad[:3]}")
      except Exception as e:
        if _resource_error(e):
          raise
        self._move_aside(step, e)
        continue
      logging.info("Restored checkpoint %s/%d", self.directory, step)
      return state, meta
    return None, None

  def _move_aside(self, step: int, error: Exception) -> None:
    """Renames a damaged checkpoint to <step>.corrupt-<UTC time>: out of restore and retention.

    Orbax never rewrites a step that exists, so leaving it in place would make every rerun
    retrain from the previous checkpoint and still never save this step again.
    """
    src = os.path.join(self.directory, str(step))
    dst = f"{src}.corrupt-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
    if jax.process_index() == 0 and os.path.isdir(src):
      os.replace(src, dst)
    if jax.process_count() > 1:
      from jax.experimental import multihost_utils
      multihost_utils.sync_global_devices(f"checkpoint_move_aside_{step}")
    self._manager.reload()
    logging.warning("Checkpoint %s is unreadable or damaged (%s: %s); moved it to %s (kept, "
                    "never restored or deleted) and trying the previous one", src,
                    type(error).__name__, str(error)[:300], dst)

  def wait(self) -> None:
    self._manager.wait_until_finished()

  def close(self) -> None:
    self._manager.wait_until_finished()
    self._manager.close()
