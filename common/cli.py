"""The command line shared by every `<pkg>/main.py`: --config (locked), --workdir, overrides."""
from __future__ import annotations

import sys
from typing import Callable

from absl import app, flags, logging
from ml_collections import config_flags

from common import diagnostics
from common import runtime
from common import sharding
from common.checkpoint import IncompatibleCheckpointError
from common.config_validation import ConfigError

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file(
    "config", None, "Experiment config file, e.g. configs/bk.py:quick. Override fields with "
    "--config.a.b=value.", lock_config=True)
flags.DEFINE_string("workdir", None, "Run directory: checkpoints, metrics, figures. Rerunning the "
                    "same command with the same workdir resumes from its latest checkpoint.")
flags.mark_flags_as_required(["config", "workdir"])


def quiet_library_logs() -> None:
  """Drops Orbax's per-save INFO chatter from the absl log; its warnings and errors stay."""
  import logging as py_logging

  class _Filter(py_logging.Filter):
    def filter(self, record):
      return record.levelno >= py_logging.WARNING or "/orbax/" not in record.pathname

  logging.get_absl_handler().addFilter(_Filter())


def run(train_and_evaluate: Callable, host_tuning: bool = False) -> None:
  """Parses flags and calls train_and_evaluate(config, workdir); clear errors, non-zero exit.

  `host_tuning`: first apply `common.runtime.tune_host` (glibc malloc settings via one re-exec,
  XLA:CPU vector width), for packages whose CPU steps are large enough to gain from it.
  """
  runtime.tune_host(host_tuning)

  def main(argv):
    quiet_library_logs()
    if len(argv) > 1:
      raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    config = FLAGS.config
    if "distributed" in config:
      sharding.maybe_initialize_distributed(config)
    diagnostics.log_environment()
    try:
      train_and_evaluate(config, FLAGS.workdir)
    except (ConfigError, IncompatibleCheckpointError) as e:
      logging.error("%s", e)
      print(f"error: {e}", file=sys.stderr)
      sys.exit(2)

  app.run(main)
