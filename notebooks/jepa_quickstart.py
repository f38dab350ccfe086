# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # H-JEPA quick start
#
# Pre-train a small hierarchical JEPA ViT on Fashion-MNIST with the library's
# `jepa.train.train_and_evaluate`, watch it live, simulate a preemption and resume, then read
# the frozen-feature evaluation: linear-probe and k-NN accuracy of the trained target encoder
# against the same network at initialisation and against raw pixels, and the effective rank of
# each level (collapse check).
#
# Data: Debian's `dataset-fashion-mnist` (`apt-get install dataset-fashion-mnist`), or the four
# IDX files in `DATA_PATH`. Without them this notebook generates a small labelled stand-in
# (bright squares in one quadrant of noise; NOT Fashion-MNIST) so that it still runs.

# %% [markdown]
# ## Install
# On Colab (or any fresh environment) this installs the repository with pip; where it is already
# importable (`pip install -e .` in a checkout) it does nothing. Set `REPO` (or the `K7_REPO`
# environment variable) to your clone's git URL (`git+https://…/k7-research.git`) or local path.

# %%
import importlib.util
import os
import subprocess
import sys

REPO = os.environ.get("K7_REPO", "")
if importlib.util.find_spec("jepa") is None:
  _checkout = os.path.abspath("..")
  _source = REPO or (_checkout if os.path.exists(os.path.join(_checkout, "setup.py")) else "")
  if not _source:
    raise RuntimeError("k7-research is not installed: set REPO to its git URL or local path")
  subprocess.run([sys.executable, "-m", "pip", "install", "-q", _source], check=True)

# %% [markdown]
# ## Parameters
# `WORKDIR` can be a mounted drive: on Colab set `MOUNT_DRIVE = True` and
# `WORKDIR = "/content/drive/MyDrive/k7/jepa_quickstart"`; a disconnected session then resumes
# from the drive when you re-run the notebook.

# %% tags=["parameters"]
SMOKE = os.environ.get("K7_NOTEBOOK_SMOKE") == "1"  # CI: tiny sizes
CONFIG = "tiny" if SMOKE else "quick"  # a configs/jepa.py variant
WORKDIR = os.environ.get("K7_NOTEBOOK_WORKDIR", "runs/jepa_quickstart")
MOUNT_DRIVE = False  # Colab: mount Google Drive at /content/drive first
SIMULATE_PREEMPTION = True  # stop the first run right after it starts, then resume it
DATA_PATH = os.environ.get("K7_NOTEBOOK_JEPA_DATA", "")  # "" = Fashion-MNIST (Debian package)

# %%
if MOUNT_DRIVE:
  from google.colab import drive  # noqa: E402 (Colab only)
  drive.mount("/content/drive")

# %% [markdown]
# ## Notebook helpers
# Plain plotting of `metrics.jsonl` while a run is going, and a simulated preemption. No
# training code: the run itself is the library's `train_and_evaluate`.

# %%
import contextlib  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import signal  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402

from absl import logging  # noqa: E402
from IPython.display import Image, Markdown, display  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from common import cli  # noqa: E402

logging.use_absl_handler()
logging.set_verbosity(logging.INFO)  # the loop's log lines are the text progress
cli.quiet_library_logs()  # no per-save Orbax chatter


def read_metrics(workdir):
  """The run's metric records [{"step": k, name: value, ...}] from metrics.jsonl."""
  path = os.path.join(workdir, "metrics.jsonl")
  if not os.path.exists(path):
    return []
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]


def plot_records(records, keys, title=""):
  """One panel per metric name, as a PNG (matplotlib's object API: safe off the main thread)."""
  fig = Figure(figsize=(3.4 * len(keys), 2.6))
  for ax, key in zip(fig.subplots(1, len(keys), squeeze=False)[0], keys):
    pts = [(r["step"], float(r[key])) for r in records if key in r]
    if pts:
      ax.plot(*zip(*pts), marker=".")
    ax.set_title(key, fontsize=9)
    ax.set_xlabel("step")
    ax.grid(alpha=0.3)
  fig.suptitle(title, fontsize=10)
  fig.tight_layout()
  buf = io.BytesIO()
  fig.savefig(buf, format="png", dpi=80)
  return Image(buf.getvalue())


def live_train(train_fn, config, workdir, keys, total_steps=None, every=1.0):
  """Calls train_fn(config, workdir) here; a side thread redraws the metrics every `every` s."""
  handle = display(Markdown("*starting: the first step compiles…*"), display_id=True)
  done = threading.Event()

  def draw():
    recs = read_metrics(workdir)
    step = recs[-1]["step"] if recs else 0
    handle.update(plot_records(recs, keys, f"{workdir}: step {step}"
                               + (f"/{total_steps}" if total_steps else "")))

  def watch():
    while not done.wait(every):
      draw()

  watcher = threading.Thread(target=watch, daemon=True)
  watcher.start()
  try:
    return train_fn(config, workdir)
  finally:
    done.set()
    watcher.join()
    draw()


@contextlib.contextmanager
def simulated_preemption(enabled=True):
  """While the block runs, delivers SIGTERM to the train loop's handler once it is installed.

  This is what a batch queue does before it preempts a job (`kill -TERM <pid>`): the loop saves
  at the next step boundary and returns "preempted". Calling the installed handler directly
  (rather than os.kill) cannot hit the default handler, which would end the kernel.
  """
  done = threading.Event()
  default = signal.getsignal(signal.SIGTERM)

  def fire():
    while not done.is_set():
      handler = signal.getsignal(signal.SIGTERM)
      if callable(handler) and handler is not default:
        handler(signal.SIGTERM, None)
        return
      time.sleep(0.002)

  if enabled:
    threading.Thread(target=fire, daemon=True).start()
  try:
    yield
  finally:
    done.set()


def checkpoint_steps(workdir):
  """Steps of the checkpoints on disk (common.checkpoint, the library's Orbax manager)."""
  from common import checkpoint as checkpoint_lib
  return checkpoint_lib.Checkpointer(os.path.join(workdir, "checkpoints"),
                                     save_every=1).all_steps()


def was_preempted(result):
  """train_and_evaluate's return value after a preemption: None (jepa) or {"status": ...}."""
  return result is None or result.get("status") == "preempted"

# %% [markdown]
# ## Data
# A stand-in is written only when no Fashion-MNIST is found (it is labelled as such below).

# %%
import gzip  # noqa: E402

import numpy as np  # noqa: E402

from jepa import data as jepa_data  # noqa: E402


def write_stand_in(directory, n_train=512, n_test=256, seed=0):
  """Four classes: a bright 8x8 square in one quadrant of a noisy 28x28 image (IDX files)."""
  os.makedirs(directory, exist_ok=True)
  rng = np.random.default_rng(seed)
  for prefix, n in (("train", n_train), ("t10k", n_test)):
    y = rng.integers(0, 4, n)
    x = rng.integers(0, 60, (n, 28, 28))
    for i, c in enumerate(y):
      r, col = divmod(int(c), 2)
      x[i, 14 * r + 3:14 * r + 11, 14 * col + 3:14 * col + 11] = 230
    for kind, a in (("images-idx3", x), ("labels-idx1", y)):
      header = bytes([0, 0, 8, a.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in a.shape)
      with gzip.open(os.path.join(directory, f"{prefix}-{kind}-ubyte.gz"), "wb") as f:
        f.write(header + a.astype(np.uint8).tobytes())
  return directory


if not DATA_PATH and not os.path.isdir(jepa_data.FASHION_MNIST_DIR):
  DATA_PATH = write_stand_in(os.path.join(WORKDIR, "stand_in_data"))
  print("Fashion-MNIST not found: using a generated stand-in at", DATA_PATH)
print("data:", DATA_PATH or jepa_data.FASHION_MNIST_DIR)

# %% [markdown]
# ## Config

# %%
from configs import jepa as jepa_configs  # noqa: E402
from jepa import train as jepa_train  # noqa: E402

config = jepa_configs.get_config(CONFIG)
config.data.path = DATA_PATH
print(config.model)

# %% [markdown]
# ## Train, with a simulated preemption
# The plot below refreshes while the run goes (the log lines under it are the loop's own
# progress). The run is stopped right after it starts, as a preempted batch job would be.

# %%
KEYS = ["train/loss", "eval/knn_accuracy", "eval/pooled/effective_rank"]
with simulated_preemption(SIMULATE_PREEMPTION):
  first = live_train(jepa_train.train_and_evaluate, config, WORKDIR, KEYS, config.train.num_steps)
print("status:", "preempted" if was_preempted(first) else "done",
      "| checkpoints on disk:", checkpoint_steps(WORKDIR))

# %% [markdown]
# ## Re-run: it resumes
# Calling `train_and_evaluate` again with the same workdir (or re-running the cell above, or
# `python -m jepa.main` with the same `--workdir`) continues from the latest checkpoint.

# %%
resumed_from = max(checkpoint_steps(WORKDIR), default=0)
final = live_train(jepa_train.train_and_evaluate, config, WORKDIR, KEYS, config.train.num_steps)
steps = [r["step"] for r in read_metrics(WORKDIR)]
assert not was_preempted(final) and steps == sorted(steps), steps
print(f"resumed from step {resumed_from}; finished at step {steps[-1]}")

# %% [markdown]
# ## Results
# Frozen features of the trained target encoder, probed on held-out images, beside the same
# network at initialisation and beside raw pixels.

# %%
with open(os.path.join(WORKDIR, "results", "final_results.json")) as f:
  res = json.load(f)
for k in ("linear_probe_accuracy", "knn_accuracy", "random_init_linear_probe_accuracy",
          "random_init_knn_accuracy", "pixel_linear_probe_accuracy"):
  print(f"{k:38s} {res[k]:.4f}")
print("effective rank per level:", {k: round(v, 2) for k, v in res["effective_rank"].items()})
display(Image(os.path.join(WORKDIR, "results", "masks.png")))
display(Image(os.path.join(WORKDIR, "results", "dashboard.png")))

# %% [markdown]
# Next: `jepa_explorer` plots probe accuracy against pre-training steps across runs;
# `jepa_interpret` shows context/target masks and the predictor's outputs.
