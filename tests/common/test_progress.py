"""Progress anywhere: the log line off a terminal, the tqdm bar on one, a 0-column pty."""
import fcntl
import logging
import os
import pty
import re
import struct
import subprocess
import termios

import jax
import jax.numpy as jnp
import numpy as np

from common import loop
from tests.common import conftest

LINE = re.compile(r"step (\d+)/(\d+) \((\d+)%\) \| ([\d.e+-]+) steps/s \| ETA (\d+:\d\d:\d\d) \| (.*)$")


class _Writer:
  def __init__(self):
    self.records = []

  def write_scalars(self, step, scalars):
    self.records.append((step, dict(scalars)))


def test_log_line_has_progress_rate_eta_and_headline_metrics_loss_first(caplog):
  # 28 metrics, as a package logs; the line shows the key ones, loss first.
  names = [f"aux/m{i:02d}" for i in range(25)] + ["train/accuracy", "train/loss", "grad/norm"]

  @jax.jit
  def step(state, batch):
    return state + 1, {n: jnp.float32(i) + state for i, n in enumerate(names)}

  writer = _Writer()
  with caplog.at_level(logging.INFO):
    loop.run(jnp.float32(0), step, lambda s: np.zeros((1,), np.float32), start_step=0,
             num_steps=20, writer=writer, log_every=10, eval_every=10,
             eval_fn=lambda state, s: {"val/accuracy": 0.25},
             key_metrics=("val/accuracy", "train/accuracy", "train/loss"))
  lines = [m for m in (LINE.search(r.getMessage()) for r in caplog.records) if m]
  assert [(m.group(1), m.group(2), m.group(3)) for m in lines] == [("10", "20", "50"),
                                                                   ("20", "20", "100")]
  assert float(lines[1].group(4)) > 0
  # Step 20: loss first, then the package's key metrics (the eval one from step 10); nothing else.
  assert lines[1].group(6) == "train/loss=45 val/accuracy=0.25 train/accuracy=44"
  assert "aux/m00" not in lines[0].group(6)
  # Every metric still reaches the writer.
  assert set(names) <= set(writer.records[0][1])
  assert any("compiling the train step…" in r.getMessage() for r in caplog.records)


def _run_in_pty(cmd, columns):
  master, slave = pty.openpty()
  fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
  proc = subprocess.Popen(cmd, stdin=slave, stdout=slave, stderr=slave, close_fds=True,
                          env=dict(os.environ, PYTHONPATH=conftest.ROOT))
  os.close(slave)
  out = b""
  while True:
    try:
      data = os.read(master, 65536)
    except OSError:  # EIO: the child closed the terminal
      break
    if not data:
      break
    out += data
  os.close(master)
  assert proc.wait(timeout=120) == 0, out.decode(errors="replace")[-3000:]
  return out.decode(errors="replace")


def test_tty_bar_shows_headline_metrics_and_log_lines_do_not_overwrite_it(tmp_path):
  out = _run_in_pty(conftest.toy_cmd(tmp_path / "w"), columns=160)
  # The bar carries the loss (first) and the eval loss.
  assert re.search(r"\| 40/40 \[[^\]]*step/s, train/loss=[\d.e-]+, eval/loss=[\d.e-]+\]", out), out[-2000:]
  # Log records go above the bar on a cleared line, never glued to the bar's text.
  assert not re.search(r"step/s[^\r\n]*\][IWE]\d{4} ", out), out[-3000:]
  assert re.search(r"\r[IWE]\d{4} [^\r\n]*step 20/40 \(50%\)", out), out[-3000:]


def test_zero_column_pty_falls_back_to_log_lines(tmp_path):
  out = _run_in_pty(conftest.toy_cmd(tmp_path / "w"), columns=0)
  assert "%|" not in out, out[-2000:]
  assert re.search(r"step 40/40 \(100%\) \| [\d.e+-]+ steps/s \| ETA 0:00:00 \| train/loss=", out)


def test_dashboard_drawn_at_plot_every_and_once_at_the_end():
  """plot_fn runs at multiples of plot_every and once at the last step (it ran twice there); a
  rerun with nothing left to do still draws the finished run's dashboard once."""

  @jax.jit
  def step(state, batch):
    return state + 1, {"train/loss": state}

  drawn = []
  for start, plot_every in ((0, 4), (0, 0), (10, 4)):
    drawn.clear()
    loop.run(jnp.float32(0), step, lambda s: np.zeros((1,), np.float32), start_step=start,
             num_steps=10, writer=_Writer(), log_every=5, plot_every=plot_every,
             plot_fn=drawn.append)
    want = {(0, 4): [4, 8, 10], (0, 0): [10], (10, 4): [10]}[(start, plot_every)]
    assert drawn == want, (start, plot_every, drawn)
  # plot_at_end=False (the caller draws after its final evaluation): no draw at the last step
  # nor on a rerun with nothing to do; the plot_every draws stay.
  for start, plot_every, want in ((0, 4, [4, 8]), (0, 0, []), (10, 4, [])):
    drawn.clear()
    loop.run(jnp.float32(0), step, lambda s: np.zeros((1,), np.float32), start_step=start,
             num_steps=10, writer=_Writer(), log_every=5, plot_every=plot_every,
             plot_fn=drawn.append, plot_at_end=False)
    assert drawn == want, (start, plot_every, drawn)
