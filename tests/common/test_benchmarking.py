"""common.benchmarking: thread pinning and the idle-machine rule."""
import os
import subprocess
import sys

import pytest

from common import benchmarking


def test_pin_threads_restricts_affinity_in_a_subprocess():
  code = ("import os; from common import benchmarking as b; cpus = b.pin_threads(1); "
          "print(len(os.sched_getaffinity(0)), os.environ['OMP_NUM_THREADS'], len(cpus))")
  root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root,
                       env=dict(os.environ, PYTHONPATH=root), timeout=60)
  assert out.stdout.split() == ["1", "1", "1"], out.stderr
  with pytest.raises(SystemExit, match="--threads=0"):
    benchmarking.pin_threads(0)


def test_refuse_if_loaded(capsys, monkeypatch):
  loads = iter([0.4, 0.9, 1.2, 0.5, 2.7])
  monkeypatch.setattr(os, "getloadavg", lambda: (next(loads), 0.0, 0.0))
  mon = benchmarking.LoadMonitor()
  mon.sample()
  benchmarking.refuse_if_loaded(mon, "x.json")  # 0.4, 0.9, 1.2 (sampled inside): accepted
  assert mon.max == 1.2 and mon.record()["load_avg_samples"] == [0.4, 0.9, 1.2]
  mon.sample()  # 0.5
  with pytest.raises(SystemExit) as e:
    benchmarking.refuse_if_loaded(mon, "x.json")  # samples 2.7
  assert e.value.code == 2 and "refusing to write x.json" in capsys.readouterr().err
