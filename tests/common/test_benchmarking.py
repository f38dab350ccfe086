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


def test_refuse_if_loaded_judges_the_start_load_and_other_processes(capsys, monkeypatch):
  hz = os.sysconf("SC_CLK_TCK")
  loads = iter([0.4, 1.9, 2.1])  # the benchmark's own threads raise the later samples
  jiffies = iter([(0, 0), (10 * hz, 10 * hz), (20 * hz, 19 * hz)])  # (machine busy, own tree)
  clock = iter([0.0, 10.0, 20.0])
  monkeypatch.setattr(os, "getloadavg", lambda: (next(loads), 0.0, 0.0))
  monkeypatch.setattr(benchmarking, "_cpu_jiffies", lambda: next(jiffies))
  monkeypatch.setattr(os, "times", lambda: type("T", (), {"elapsed": next(clock)})())
  mon = benchmarking.LoadMonitor()  # samples 0.4 at t=0
  mon.sample()  # t=10: all busy time was ours
  benchmarking.refuse_if_loaded(mon, "x.json")  # t=20: 1 CPU-s of 20 s foreign = 0.05 cores
  rec = mon.record()
  assert rec["load_avg_samples"] == [0.4, 1.9, 2.1] and rec["load_avg_start"] == 0.4
  assert abs(rec["other_processes_cpu_cores"] - 0.05) < 1e-9


def test_refuse_if_loaded_refuses_a_busy_start(capsys, monkeypatch):
  loads = iter([2.7, 0.5])
  monkeypatch.setattr(os, "getloadavg", lambda: (next(loads), 0.0, 0.0))
  monkeypatch.setattr(benchmarking, "_cpu_jiffies", lambda: (0, 0))
  mon = benchmarking.LoadMonitor()
  with pytest.raises(SystemExit) as e:
    benchmarking.refuse_if_loaded(mon, "x.json")
  assert e.value.code == 2 and "was 2.70 when the benchmark started" in capsys.readouterr().err


def test_refuse_if_loaded_refuses_other_processes_cpu(capsys, monkeypatch):
  hz = os.sysconf("SC_CLK_TCK")
  jiffies = iter([(0, 0), (20 * hz, 10 * hz)])  # 10 of 20 busy CPU-s were another process's
  clock = iter([0.0, 10.0])
  monkeypatch.setattr(os, "getloadavg", lambda: (0.3, 0.0, 0.0))
  monkeypatch.setattr(benchmarking, "_cpu_jiffies", lambda: next(jiffies))
  monkeypatch.setattr(os, "times", lambda: type("T", (), {"elapsed": next(clock)})())
  mon = benchmarking.LoadMonitor()
  with pytest.raises(SystemExit) as e:
    benchmarking.refuse_if_loaded(mon, "x.json")
  assert e.value.code == 2 and "other processes used 1.00 CPU cores" in capsys.readouterr().err


def test_own_cpu_time_counts_child_processes():
  """A busy child process is the benchmark's own time, not another process's."""
  busy0, own0 = benchmarking._cpu_jiffies()
  child = subprocess.Popen([sys.executable, "-c",
                            "import time\nt = time.process_time()\n"
                            "while time.process_time() - t < 1.0: pass\nimport time; time.sleep(0.5)"])
  import time
  time.sleep(1.3)  # the child is alive and has burnt ~1 CPU-s
  busy1, own1 = benchmarking._cpu_jiffies()
  child.wait()
  hz = os.sysconf("SC_CLK_TCK")
  assert (own1 - own0) / hz >= 0.8, (own1 - own0) / hz
  assert busy1 - busy0 >= own1 - own0 - 2  # the machine's busy time includes ours
