"""Data parallelism over a 1-D ("data",) mesh; parameters replicated."""
from __future__ import annotations

import contextlib
from typing import Any

import jax
import numpy as np
from absl import logging
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from common.config_validation import ConfigError

PyTree = Any


def maybe_initialize_distributed(config) -> None:
  """Calls jax.distributed.initialize() when config.distributed.enabled (multi-host runs).

  Coordinator address, process count and id come from config.distributed when set, otherwise
  from the cluster environment (SLURM, TPU pods, ...), as jax.distributed.initialize supports.
  """
  dist = config.get("distributed") if hasattr(config, "get") else None
  if not dist or not dist.enabled:
    return
  kwargs = {}
  if dist.coordinator_address:
    kwargs = dict(coordinator_address=dist.coordinator_address,
                  num_processes=dist.num_processes, process_id=dist.process_id)
  jax.distributed.initialize(**kwargs)
  logging.info("jax.distributed initialised: process %d of %d", jax.process_index(),
               jax.process_count())


_DEVICES = None  # set by `use_devices`: the devices make_mesh() uses by default


@contextlib.contextmanager
def use_devices(devices):
  """Within the block, make_mesh() (and so jit_train_step, restore, shard_batch) uses `devices`.

  E.g. `with use_devices(jax.devices()[:1]): train_and_evaluate(...)` runs a job on one device of
  a multi-device host (the data-parallel tests compare 1 and 4 devices in one process).
  """
  global _DEVICES
  previous, _DEVICES = _DEVICES, list(devices)
  try:
    yield
  finally:
    _DEVICES = previous


def make_mesh(devices=None) -> Mesh:
  """A 1-D mesh named ("data",) over all (global) devices, or those of `use_devices`."""
  if devices is None:
    devices = _DEVICES if _DEVICES is not None else jax.devices()
  return Mesh(np.asarray(devices), ("data",))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def batch_sharding(mesh: Mesh) -> NamedSharding:
  """Leading (batch) axis split over the "data" axis."""
  return NamedSharding(mesh, P("data"))


def check_batch_divisible(batch_size: int, mesh: Mesh, field: str = "batch_size") -> None:
  n = mesh.devices.size
  if batch_size % n:
    raise ConfigError(f"config.{field}={batch_size} is invalid: allowed a multiple of the "
                     f"device count {n}")


_REPLICATED_WARNED: set = set()


def shard_batch(batch: PyTree, mesh: Mesh) -> PyTree:
  """The global batch as a host numpy pytree → global arrays sharded on axis 0.

  Every process computes the same global batch (batches are a function of the step), and each
  feeds its own devices only their rows: with several processes, make_array_from_callback asks
  this process for the slices of its addressable devices. A leaf whose leading axis does not
  divide by the device count (padded graph nodes, a scalar) is replicated instead, with one
  warning per shape: results are the same, only that leaf is not split.
  """
  n = mesh.devices.size
  split, rep = batch_sharding(mesh), replicated(mesh)

  def put(path, x):
    x = np.asarray(x)
    sharding = split
    if x.ndim == 0 or x.shape[0] % n:
      sharding = rep
      key = (jax.tree_util.keystr(path), x.shape, n)
      if n > 1 and key not in _REPLICATED_WARNED:
        _REPLICATED_WARNED.add(key)
        logging.warning("batch leaf %s of shape %s does not split over %d devices: replicated",
                        key[0], x.shape, n)
    if jax.process_count() == 1:
      return jax.device_put(x, sharding)
    return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])

  return jax.tree_util.tree_map_with_path(put, batch)


def replicate(tree: PyTree, mesh: Mesh) -> PyTree:
  return jax.device_put(tree, replicated(mesh))
