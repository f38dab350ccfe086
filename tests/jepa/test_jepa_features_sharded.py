"""Feature extraction and probes data-parallel on a 4-device CPU mesh equal one device."""
import os
import subprocess
import sys

SCRIPT = r"""
import jax, jax.numpy as jnp, numpy as np
from configs import jepa as jepa_configs
from common import sharding
from jepa import evaluation, loss as loss_lib, model as model_lib, step as step_lib, train
assert len(jax.devices()) == 4
cfg = jepa_configs.get_config("tiny")
vit = model_lib.vit_config(cfg.model, cfg.data.image_size, 1)
hier = loss_lib.hierarchy_from_config(cfg.hierarchy, vit.depth, vit.grid)
fn = step_lib.make_feature_fn(vit, hier, np.array([0.3]), np.array([0.2]))
params = model_lib.Encoder(vit).init(jax.random.key(0), jnp.zeros((1, 28, 28, 1)))["params"]
rng = np.random.default_rng(0)
images = rng.integers(0, 256, (37, 28, 28, 1)).astype(np.uint8)
labels = (images.reshape(37, -1).mean(1) > 127.5).astype(np.int32)
keys = ("pooled", "level_2")
one = train.extract(fn, params, images, 10, keys, mesh=sharding.make_mesh(jax.devices()[:1]))
four = train.extract(fn, params, images, 10, keys, mesh=sharding.make_mesh())
for k in keys:
  assert one[k].shape == four[k].shape and one[k].shape[0] == 37, (k, one[k].shape)
  np.testing.assert_allclose(four[k], one[k], rtol=1e-5, atol=1e-5)
# A second extraction of a sub-batch smaller than the device count pads and trims correctly.
small = train.extract(fn, params, images[:3], 10, ("pooled",), mesh=sharding.make_mesh())["pooled"]
np.testing.assert_allclose(small, one["pooled"][:3], rtol=1e-5, atol=1e-5)
lp = [evaluation.linear_probe_accuracy(f["pooled"][:25], labels[:25], f["pooled"][25:], labels[25:],
                                       l2=1e-3, iterations=50, num_classes=2) for f in (one, four)]
assert lp[0] == lp[1], lp
print("OK", lp)
"""


def test_feature_extraction_on_four_devices_matches_one(tmp_path):
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu")
  root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
  proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300,
                        env=env, cwd=root)
  assert proc.returncode == 0 and "OK" in proc.stdout, proc.stderr[-3000:]
