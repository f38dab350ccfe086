"""The command line shared by every `<pkg>/main.py`: --config (locked), --workdir, overrides."""
from __future__ import annotations

import os
import re
import sys
from typing import Callable

from absl import app, flags, logging
from ml_collections import config_flags

from common import diagnostics
from common import runtime
from common import sharding
from common import workdir as workdir_lib
from common.checkpoint import IncompatibleCheckpointError
from common.config_validation import ConfigError
from common.loop import NonFiniteError

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


def _fail(message: str) -> None:
  """A user mistake: one line on stderr, exit code 2, no traceback."""
  sys.stderr.flush()
  print(f"error: {message}", file=sys.stderr, flush=True)
  sys.exit(2)


def _last_error_line(text: str) -> str:
  """'ValueError: unknown variant ...' → 'unknown variant ...' from a message holding a traceback."""
  lines = [l.strip() for l in str(text).strip().splitlines() if l.strip()]
  for line in reversed(lines):
    m = re.match(r"^([A-Za-z_.]*(Error|Exception)):\s*(.*)$", line)
    if m:
      return m.group(3)
  return lines[-1] if lines else str(text)


def _config_arg(argv) -> str | None:
  for i, a in enumerate(argv):
    if a.startswith("--config="):
      return a.split("=", 1)[1]
    if a == "--config" and i + 1 < len(argv):
      return argv[i + 1]
  return None


def parse_flags(argv):
  """absl's flag parsing, with each user mistake as one line and exit code 2.

  Covers a missing config file or unknown variant, a misspelt override (absl's "Did you mean"
  hint kept) and a badly typed override.
  """
  config_arg = _config_arg(argv[1:])
  if config_arg is not None:
    path = config_arg.split(":", 1)[0]
    if not os.path.isfile(path):
      _fail(f"--config={config_arg}: no such config file {path!r}: allowed a path to a config "
            "file, e.g. configs/bk.py:quick")
  try:
    return FLAGS(argv)
  except flags.Error as e:
    text = str(e)
    if "Error whilst parsing config file" in text:
      _fail(f"--config={config_arg}: {_last_error_line(text)}")
    _fail(_last_error_line(text.replace("\n", " ")))
  except (AttributeError, KeyError) as e:
    # A misspelt --config.a.b override: ml_collections raises while parsing the flag, with the
    # message "'key'\nDid you mean ...?" inside a KeyError inside the AttributeError.
    inner = e
    while inner.args and isinstance(inner.args[0], BaseException):
      inner = inner.args[0]
    message = str(inner.args[0]) if inner.args else str(inner)
    key = message.split("\n")[0].strip("'\"")
    override = next((a for a in argv[1:] if a.startswith("--config.") and key in a), None)
    hint = " ".join(l.strip() for l in message.split("\n")[1:])
    _fail(f"{override or 'a --config override'}: the config has no field {key!r}"
          + (f". {hint}" if hint else ""))


def run(train_and_evaluate: Callable, host_tuning: bool = False) -> None:
  """Parses flags and calls train_and_evaluate(config, workdir).

  User mistakes (bad flags or config values, an unusable workdir, a checkpoint written by another
  config, a NaN stop) end with one line on stderr and exit code 2; bugs raise with a traceback.
  `host_tuning`: first apply `common.runtime.tune_host` (glibc malloc settings via one re-exec,
  XLA:CPU vector width), for packages whose CPU steps are large enough to gain from it.
  """
  runtime.tune_host(host_tuning)

  def main(argv):
    quiet_library_logs()
    if len(argv) > 1:
      _fail(f"unexpected arguments {argv[1:]}: allowed only --config, --workdir and "
            "--config.<field>=<value> flags")
    try:
      config = FLAGS.config
    except OSError as e:  # ml_collections defers a config-file load error to first access
      _fail(f"--config: {_last_error_line(str(e))}")
    main_body(train_and_evaluate, config, FLAGS.workdir)

  app.run(main, flags_parser=parse_flags)


def main_body(train_and_evaluate: Callable, config, workdir: str):
  """Checks the workdir, then runs train_and_evaluate with user mistakes turned into exit 2."""
  try:
    workdir_lib.check_writable(workdir)  # before anything is restored
    if "distributed" in config:
      sharding.maybe_initialize_distributed(config)
    diagnostics.log_environment()
    return train_and_evaluate(config, workdir)
  except IncompatibleCheckpointError as e:
    _fail(_incompatible_message(e, config, workdir))
  except (ConfigError, NonFiniteError) as e:
    _fail(str(e))


def _incompatible_message(error: Exception, config, workdir: str) -> str:
  """Names the config fields that differ from the config that wrote the checkpoints."""
  path, saved = workdir_lib.latest_saved_config(workdir)
  if saved is None:
    return str(error)
  diffs = workdir_lib.config_differences(saved, workdir_lib.config_dict(config))
  if not diffs:
    return str(error)
  return (f"the checkpoints in {workdir} were written with another config; fields that differ "
          f"from {os.path.basename(path)}: {'; '.join(diffs[:8])}"
          f"{' …' if len(diffs) > 8 else ''}. Arrays: {error}")
