"""Model and loss: ground truths and equivalences."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import jepa as jepa_configs
from jepa import loss as loss_lib
from jepa import model as model_lib


def _vit(**kw):
  cfg = jepa_configs.get_config("tiny").model
  return model_lib.vit_config(cfg, 28, 1) if not kw else model_lib.ViTConfig(28, 1, **{**cfg.to_dict(), **kw})


def test_sincos_pos_embed_ground_truth():
  pe = model_lib.sincos_pos_embed_2d(8, (3, 3))
  assert pe.shape == (9, 8)
  # Patch (row 1, col 2): first half encodes the row with omega = [1, 1/100], second half the column.
  np.testing.assert_allclose(pe[5], [np.sin(1), np.sin(0.01), np.cos(1), np.cos(0.01),
                                     np.sin(2), np.sin(0.02), np.cos(2), np.cos(0.02)], rtol=1e-6)


def test_patchify_row_major():
  img = jnp.arange(16.0).reshape(1, 4, 4, 1)
  p = model_lib.patchify(img, 2)
  np.testing.assert_array_equal(p[0, 1], [2, 3, 6, 7])  # top-right patch
  np.testing.assert_array_equal(p[0, 2], [8, 9, 12, 13])


def test_token_dropping_equals_gathered_full_run_and_ignores_padding():
  vit = _vit()
  enc = model_lib.Encoder(vit)
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 28, 28, 1))
  params = jax.jit(enc.init)(jax.random.PRNGKey(1), x)["params"]
  apply = jax.jit(lambda i, v: enc.apply({"params": params}, x, i, v))
  full = jax.jit(enc.apply)({"params": params}, x)[:, ::-1]
  all_valid = apply(jnp.arange(49)[None, ::-1].repeat(2, 0), jnp.ones((2, 49), bool))
  np.testing.assert_allclose(all_valid, full, atol=1e-5)
  # Padded (invalid) tokens do not change the outputs of the valid ones, whatever they hold.
  valid = jnp.arange(49)[None].repeat(2, 0) < 3
  idx = jnp.zeros((2, 49), jnp.int32).at[:, :3].set(jnp.array([[3, 10, 48], [7, 7, 20]]))
  pad_a = apply(idx, valid)
  pad_b = apply(idx.at[:, 3:].set(jnp.arange(46)[None]), valid)
  np.testing.assert_allclose(pad_a[:, :3], pad_b[:, :3], atol=1e-5)
  assert float(jnp.abs(pad_a[:, 3:] - pad_b[:, 3:]).max()) > 1e-2  # the padding itself did differ


def _reference_attention(q, k, v, valid):
  logits = jnp.einsum("bhqd,bhkd->bhqk", q, k) / np.sqrt(q.shape[-1])
  logits = jnp.where(valid[:, None, None, :], logits, -1e9)
  return jnp.einsum("bhqk,bhkd->bhqd", jax.nn.softmax(logits, -1), v)


def test_attend_custom_vjp_matches_autodiff_with_key_mask():
  kq, kk, kv, kd, km = jax.random.split(jax.random.PRNGKey(0), 5)
  q, k, v, dy = (jax.random.normal(key, (3, 2, 7, 8)) for key in (kq, kk, kv, kd))
  valid = jax.random.uniform(km, (3, 7)) < 0.6
  valid = valid.at[:, 0].set(True)
  out, vjp = jax.vjp(lambda *a: model_lib.attend(*a, valid), q, k, v)
  ref, ref_vjp = jax.vjp(lambda *a: _reference_attention(*a, valid), q, k, v)
  np.testing.assert_allclose(out, ref, atol=1e-6)
  for got, want in zip(vjp(dy), ref_vjp(dy)):
    assert float(jnp.abs(want).max()) > 1e-2
    np.testing.assert_allclose(got, want, atol=1e-5)
  # Masked keys get exactly zero key/value gradient.
  dk, dv = vjp(dy)[1:]
  masked = ~valid[:, None, :, None]
  assert float(jnp.abs(jnp.where(masked, dk, 0)).max()) == 0.0
  assert float(jnp.abs(jnp.where(masked, dv, 0)).max()) == 0.0
  # No key mask: plain softmax attention, and its gradient.
  all_valid = jnp.ones((3, 7), bool)
  g = jax.grad(lambda q: (model_lib.attend(q, k, v, None) * dy).sum())(q)
  g_ref = jax.grad(lambda q: (_reference_attention(q, k, v, all_valid) * dy).sum())(q)
  np.testing.assert_allclose(g, g_ref, atol=1e-5)


def test_gelu_erf_is_the_exact_gelu():
  x = jnp.linspace(-8.0, 8.0, 4001)
  # Absolute agreement (PyTorch's own formula): 1 + erf cancels for x << 0, where both are ~0.
  np.testing.assert_allclose(model_lib.gelu_erf(x), jax.nn.gelu(x, approximate=False), atol=1e-6, rtol=1e-6)
  np.testing.assert_allclose(jax.vmap(jax.grad(model_lib.gelu_erf))(x),
                             jax.vmap(jax.grad(lambda t: jax.nn.gelu(t, approximate=False)))(x), atol=1e-6)
  # Far from the tanh approximation (max gap ~4.7e-4 near |x| = 2).
  assert float(jnp.abs(model_lib.gelu_erf(x) - jax.nn.gelu(x, approximate=True)).max()) > 1e-4


def test_bad_model_config():
  cfg = jepa_configs.get_config("tiny").model
  with pytest.raises(ValueError, match="patch_size"):
    model_lib.vit_config(cfg, 30, 1)
  cfg.width = 33
  with pytest.raises(ValueError, match="model.width=33"):
    model_lib.vit_config(cfg, 28, 1)


def test_smooth_l1_and_l2_ground_truth():
  pred, tgt = jnp.array([0.0, 0.5, 3.0]), jnp.zeros(3)
  np.testing.assert_allclose(loss_lib.elementwise_loss(pred, tgt, "smooth_l1"), [0.0, 0.125, 2.5])
  np.testing.assert_allclose(loss_lib.elementwise_loss(pred, tgt, "l2"), [0.0, 0.25, 9.0])
  with pytest.raises(ValueError, match="loss.kind"):
    loss_lib.elementwise_loss(pred, tgt, "huber")


def test_masked_mean_ignores_invalid_tokens():
  pred = jnp.array([[[1.0, 1.0], [100.0, 100.0]]])  # [1, K=2, D=2]
  valid = jnp.array([[True, False]])
  assert float(loss_lib.masked_mean_loss(pred, jnp.zeros_like(pred), valid, "l2")) == pytest.approx(1.0)


def test_pool_in_blocks_ground_truth():
  # A 3x3 block at (top=1, left=2) on a 7x7 grid, values = token number 0..8 (+ 3 padded tokens).
  rows, cols = np.meshgrid(np.arange(1, 4), np.arange(2, 5), indexing="ij")
  idx = jnp.asarray(np.concatenate([(rows * 7 + cols).ravel(), [0, 0, 0]]))[None, None]
  valid = (jnp.arange(12) < 9)[None, None]
  x = jnp.arange(12.0)[None, None, :, None]
  pooled, wvalid = loss_lib.pool_in_blocks(x, idx, valid, 7, 2)
  # Windows: {0,1,3,4} -> 2, {2,5} -> 3.5, {6,7} -> 6.5, {8} -> 8.
  np.testing.assert_allclose(pooled[0, 0, :4, 0], [2.0, 3.5, 6.5, 8.0])
  np.testing.assert_array_equal(wvalid[0, 0], np.arange(12) < 4)


def test_hierarchical_loss_levels_and_weights():
  hier = loss_lib.hierarchy_from_config(jepa_configs.get_config("default").hierarchy, 4, (7, 7))
  key = jax.random.PRNGKey(0)
  targets = jax.random.normal(key, (1, 2, 49, 8))
  preds = jax.random.normal(jax.random.PRNGKey(1), (1, 2, 1, 12, 8))
  rows, cols = np.meshgrid(np.arange(0, 3), np.arange(0, 4), indexing="ij")
  idx = jnp.asarray((rows * 7 + cols).ravel())[None, None].repeat(2, 0)
  valid = jnp.ones((2, 1, 12), bool)
  total, per = jax.jit(lambda p, t: loss_lib.hierarchical_loss(p, t, idx, valid, hier, "l2", 7))(preds, targets)
  expect = sum(w * per[f"loss/level_{l}"] for l, w in enumerate((1.0, 0.5, 0.25)))
  assert float(total) == pytest.approx(float(expect), rel=1e-6)
  # Level 0 = plain token loss; level 2 (4x4 pool) of a 3x4 block = loss of the block means.
  tgt = jnp.take_along_axis(targets[0], idx.reshape(2, 12)[..., None], 1)
  np.testing.assert_allclose(per["loss/level_0"], jnp.mean((preds[0, :, 0] - tgt) ** 2), rtol=1e-5)
  np.testing.assert_allclose(per["loss/level_2"],
                             jnp.mean((preds[0, :, 0].mean(1) - tgt.mean(1)) ** 2), rtol=1e-5)


@pytest.mark.parametrize("field,value,msg", [
    ("kind", "fpn", "hierarchy.kind"),
    ("weights", (1.0, 0.5, 0.25, 0.1, 0.1), "weights"),
    ("weights", (), "weights"),
])
def test_bad_hierarchy(field, value, msg):
  h = jepa_configs.get_config("default").hierarchy
  setattr(h, field, value)
  with pytest.raises(ValueError, match=msg):
    loss_lib.hierarchy_from_config(h, 4, (7, 7))


def test_bad_layer_level():
  h = jepa_configs.get_config("default").hierarchy
  h.kind, h.layers = "layers", (0, 2, 9)
  with pytest.raises(ValueError, match="hierarchy.layers"):
    loss_lib.hierarchy_from_config(h, 4, (7, 7))
  h.layers = (0, 2, 1)
  assert loss_lib.hierarchy_from_config(h, 4, (7, 7)).layers == (4, 2, 1)
