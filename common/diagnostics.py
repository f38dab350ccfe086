"""Start-of-run diagnostics: JAX version, devices, memory."""
from __future__ import annotations

import os

import jax
from absl import logging


def device_memory_stats() -> dict[str, float]:
  """Memory stats of the first local device in MiB ({} where the backend has none, e.g. CPU)."""
  try:
    stats = jax.local_devices()[0].memory_stats() or {}
  except Exception:  # Some backends raise instead of returning None; there is nothing to report.
    stats = {}
  out = {}
  for key in ("bytes_in_use", "peak_bytes_in_use", "bytes_limit"):
    if key in stats:
      out[key.replace("bytes", "mib")] = stats[key] / 2**20
  return out


def log_environment() -> dict:
  """Logs and returns the JAX version, backend, device kind/count and memory stats."""
  devices = jax.devices()
  info = {
      "jax_version": jax.__version__,
      "backend": jax.default_backend(),
      "device_kind": devices[0].device_kind,
      "device_count": jax.device_count(),
      "local_device_count": jax.local_device_count(),
      "process_index": jax.process_index(),
      "process_count": jax.process_count(),
      "memory_mib": device_memory_stats(),
      "host_tuning": {k: os.environ[k] for k in ("MALLOC_ARENA_MAX", "GLIBC_TUNABLES", "XLA_FLAGS")
                      if k in os.environ},
  }
  logging.info("JAX %s | backend %s | %d x %s (%d local) | process %d/%d | memory %s",
               info["jax_version"], info["backend"], info["device_count"], info["device_kind"],
               info["local_device_count"], info["process_index"], info["process_count"],
               info["memory_mib"] or "n/a")
  logging.info("host tuning (common.runtime; COMMON_HOST_TUNING=0/1 overrides): %s", info["host_tuning"] or "none")
  return info
