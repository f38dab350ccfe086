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
# # NSM quick start
#
# Train the hierarchical neural-symbolic graph model (R-GCN, top-k pooling, WHY/WHAT cycle
# consistency) on one synthetic reasoning domain with the library's `nsm.train.train_and_evaluate`,
# watch it live, simulate a preemption and resume, then read the test metrics beside the trivial
# baselines, and the confusion matrix.

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
if importlib.util.find_spec("nsm") is None:
  _checkout = os.path.abspath("..")
  _source = REPO or (_checkout if os.path.exists(os.path.join(_checkout, "setup.py")) else "")
  if not _source:
    raise RuntimeError("k7-research is not installed: set REPO to its git URL or local path")
  subprocess.run([sys.executable, "-m", "pip", "install", "-q", _source], check=True)

# %% [markdown]
# ## Parameters
# `WORKDIR` can be a mounted drive: on Colab set `MOUNT_DRIVE = True` and
# `WORKDIR = "/content/drive/MyDrive/k7/nsm_quickstart"`; a disconnected session then resumes
# from the drive when you re-run the notebook.

# %% tags=["parameters"]
SMOKE = os.environ.get("K7_NOTEBOOK_SMOKE") == "1"  # CI: tiny sizes
CONFIG = "tiny" if SMOKE else "quick"  # a configs/nsm.py variant
WORKDIR = os.environ.get("K7_NOTEBOOK_WORKDIR", "runs/nsm_quickstart")
MOUNT_DRIVE = False  # Colab: mount Google Drive at /content/drive first
SIMULATE_PREEMPTION = True  # stop the first run right after it starts, then resume it
DOMAIN = "causal"  # causal | planning | kg

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
# ## Config

# %%
from configs import nsm as nsm_configs  # noqa: E402
from nsm import train as nsm_train  # noqa: E402

config = nsm_configs.get_config(CONFIG)
config.domain = DOMAIN
if SMOKE:
  config.train.flat_epochs = 0  # skip the flat R-GCN baseline (a second training run)
  config.train.plot_every_evals = 2  # the dashboard at the end only (not also at the middle eval)
print(config.model)

# %% [markdown]
# ## Train, with a simulated preemption
# The plot below refreshes while the run goes (the log lines under it are the loop's own
# progress). The run is stopped right after it starts, as a preempted batch job would be.

# %%
KEYS = ["train/loss", "val/loss", "val/accuracy"]
with simulated_preemption(SIMULATE_PREEMPTION):
  first = live_train(nsm_train.train_and_evaluate, config, WORKDIR, KEYS, None)
print("status:", "preempted" if was_preempted(first) else "done",
      "| checkpoints on disk:", checkpoint_steps(WORKDIR))

# %% [markdown]
# ## Re-run: it resumes
# Calling `train_and_evaluate` again with the same workdir (or re-running the cell above, or
# `python -m nsm.main` with the same `--workdir`) continues from the latest checkpoint.

# %%
resumed_from = max(checkpoint_steps(WORKDIR), default=0)
final = live_train(nsm_train.train_and_evaluate, config, WORKDIR, KEYS, None)
steps = [r["step"] for r in read_metrics(WORKDIR)]
assert not was_preempted(final) and steps == sorted(steps), steps
print(f"resumed from step {resumed_from}; finished at step {steps[-1]}")

# %% [markdown]
# ## Results
# Test metrics of the checkpoint with the best validation loss, beside baselines fitted on the
# same split (majority class, graph size, edge-type counts, and in full runs a flat R-GCN).

# %%
with open(os.path.join(WORKDIR, "results", "final_results.json")) as f:
  res = json.load(f)
print(f"test accuracy {res['test_accuracy']:.4f}, balanced {res['balanced_accuracy']:.4f}")
print("baselines:", json.dumps(res.get("baselines", {}), indent=1))
display(Image(os.path.join(WORKDIR, "results", "confusion_matrix.png")))
display(Image(os.path.join(WORKDIR, "results", "dashboard.png")))

# %% [markdown]
# Next: `nsm_explorer` puts several domains side by side with their confusion matrices;
# `nsm_interpret` draws the pooled hierarchy of one graph.
