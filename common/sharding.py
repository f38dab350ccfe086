"""Data parallelism over a 1-D ("data",) mesh; parameters replicated."""
from __future__ import annotations

from typing import Any

import jax
import numpy as np
from absl import logging
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

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


def make_mesh(devices=None) -> Mesh:
  """A 1-D mesh named ("data",) over all (global) devices."""
  devices = jax.devices() if devices is None else devices
  return Mesh(np.asarray(devices), ("data",))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def batch_sharding(mesh: Mesh) -> NamedSharding:
  """Leading (batch) axis split over the "data" axis."""
  return NamedSharding(mesh, P("data"))


def check_batch_divisible(batch_size: int, mesh: Mesh, field: str = "batch_size") -> None:
  n = mesh.devices.size
  if batch_size % n:
    raise ValueError(f"config.{field}={batch_size} is invalid: allowed a multiple of the "
                     f"device count {n}")


def shard_batch(batch: PyTree, mesh: Mesh) -> PyTree:
  """Host numpy pytree (this process's rows) → global arrays sharded on axis 0."""
  sharding = batch_sharding(mesh)

  def put(x):
    x = np.asarray(x)
    if jax.process_count() == 1:
      return jax.device_put(x, sharding)
    return jax.make_array_from_process_local_data(sharding, x)

  return jax.tree.map(put, batch)


def replicate(tree: PyTree, mesh: Mesh) -> PyTree:
  return jax.device_put(tree, replicated(mesh))
