"""Two processes on localhost (jax.distributed + gloo CPU collectives) run growth's tiny train loop.

python tests/common/multihost_check.py worker PROCESS_ID TMP PORT   (2 local CPU devices each)
python tests/common/multihost_check.py single TMP

Each worker computes the global batch of a step and feeds its own devices only their rows
(common.sharding.shard_batch); process 0 writes the metrics; both write the Orbax checkpoint.
`single` trains the same steps in one process, checks the losses match, then resumes the
two-process checkpoint in a single process and checks the next step matches too.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import jax  # noqa: E402
import numpy as np  # noqa: E402

from common import loop  # noqa: E402
from tests.common import distributed_check as dc  # noqa: E402

STEPS = 3


def main(argv):
  mode = argv[1]
  if mode == "worker":
    process_id, tmp, port = int(argv[2]), argv[3], argv[4]
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address=f"localhost:{port}", num_processes=2,
                               process_id=process_id)
    assert jax.process_count() == 2 and jax.device_count() == 4, jax.devices()
  else:
    tmp = argv[2]
  fn, config = dc._growth()
  loop._SigtermFlag = dc._StopAfter
  multi, ref = os.path.join(tmp, "multi"), os.path.join(tmp, "single")
  if mode == "worker":
    dc.run(fn, config, multi, jax.devices(), STEPS)
    print(f"WORKER-OK {process_id}", flush=True)
    return
  dc.run(fn, config, ref, jax.devices(), STEPS)
  lm, lr = dc.losses(multi), dc.losses(ref)
  assert sorted(lm) == sorted(lr) == list(range(1, STEPS + 1)), (lm, lr)
  np.testing.assert_allclose([lm[s] for s in sorted(lm)], [lr[s] for s in sorted(lr)],
                             rtol=2e-5, atol=1e-6)
  # The two-process checkpoint resumes in one process, and the next step matches.
  dc.run(fn, config, multi, jax.devices(), STEPS + 1)
  dc.run(fn, config, ref, jax.devices(), STEPS + 1)
  lm, lr = dc.losses(multi), dc.losses(ref)
  np.testing.assert_allclose(lm[STEPS + 1], lr[STEPS + 1], rtol=2e-5, atol=1e-6)
  print(f"MULTIHOST-OK losses {[round(lr[s], 5) for s in sorted(lr)]}", flush=True)


if __name__ == "__main__":
  main(sys.argv)
