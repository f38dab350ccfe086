"""Parity with the PyTorch I-JEPA reference step: same weights, batch and masks -> same loss and grads."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch is the [bench] extra; parity needs it")

from configs import jepa as jepa_configs  # noqa: E402
from jepa import bench_torch  # noqa: E402
from jepa import loss as loss_lib  # noqa: E402
from jepa import masking  # noqa: E402
from jepa import model as model_lib  # noqa: E402
from jepa import step as step_lib  # noqa: E402


def _t(x):
  return jnp.asarray(x.detach().numpy())


def _block_params(blk):
  return {"norm1": {"scale": _t(blk.norm1.weight), "bias": _t(blk.norm1.bias)},
          "norm2": {"scale": _t(blk.norm2.weight), "bias": _t(blk.norm2.bias)},
          **{name: {"kernel": _t(getattr(blk, name).weight.T), "bias": _t(getattr(blk, name).bias)}
             for name in ("qkv", "proj", "fc1", "fc2")}}


def _encoder_params(enc, vit):
  w = enc.patch.weight  # [D, C, p, p] -> our patchify order (row, col, channel)
  return {"patch_embed": {"kernel": _t(w.permute(2, 3, 1, 0).reshape(-1, vit.width)), "bias": _t(enc.patch.bias)},
          **{f"block_{i}": _block_params(b) for i, b in enumerate(enc.blocks)},
          "norm": {"scale": _t(enc.norm.weight), "bias": _t(enc.norm.bias)}}


def _predictor_params(pred):
  return {"embed": {"kernel": _t(pred.embed.weight.T), "bias": _t(pred.embed.bias)},
          "mask_token": _t(pred.mask_token.reshape(-1)),
          **{f"block_{i}": _block_params(b) for i, b in enumerate(pred.blocks)},
          "norm": {"scale": _t(pred.norm.weight), "bias": _t(pred.norm.bias)},
          "proj": {"kernel": _t(pred.out.weight.T), "bias": _t(pred.out.bias)}}


def test_loss_and_gradients_match_torch_reference():
  config = jepa_configs.get_config("tiny")
  config.hierarchy.weights = (1.0,)
  vit = model_lib.vit_config(config.model, 28, 1)
  hier = loss_lib.hierarchy_from_config(config.hierarchy, vit.depth, vit.grid)
  ref = bench_torch.IJEPAStep(vit, seed=0)
  with torch.no_grad():  # make the target differ from the online encoder, as after training
    for p in ref.target.parameters():
      p.add_(0.01 * torch.randn_like(p))
  ctx_idx, _, tgt_idx, _ = map(np.asarray, jax.jit(
      lambda k: masking.sample_masks(k, vit.grid, 4, config.mask))(jax.random.PRNGKey(0)))
  images = np.random.default_rng(0).integers(0, 256, (4, 28, 28, 1), np.uint8)
  x, ci, ti = bench_torch.to_torch_inputs(images, ctx_idx, tgt_idx, 0.286, 0.353)

  # Torch loss and gradients (the reference uses every index as a real token: all valid here too).
  with torch.no_grad():
    h = torch.nn.functional.layer_norm(ref.target(x), (vit.width,))
    h = bench_torch._gather(h, ti.reshape(4, -1)).reshape(4 * tgt_idx.shape[1], tgt_idx.shape[2], -1)
  z = ref.predictor(ref.encoder(x, ci), ci, ti)
  loss_t = torch.nn.functional.smooth_l1_loss(z, h)
  loss_t.backward()
  grad_norm_t = float(torch.sqrt(sum((p.grad ** 2).sum() for p in
                                     list(ref.encoder.parameters()) + list(ref.predictor.parameters()))))

  params = {"encoder": _encoder_params(ref.encoder, vit), "predictor": _predictor_params(ref.predictor)}
  target = _encoder_params(ref.target, vit)
  masks = (jnp.asarray(ctx_idx), jnp.ones(ctx_idx.shape, bool), jnp.asarray(tgt_idx), jnp.ones(tgt_idx.shape, bool))
  xj = jnp.asarray(x.numpy().transpose(0, 2, 3, 1))
  (loss_j, _), grads = jax.jit(jax.value_and_grad(
      lambda p: step_lib.jepa_loss(p, target, xj, masks, vit, hier, "smooth_l1"), has_aux=True))(params)
  assert float(loss_j) == pytest.approx(loss_t.item(), rel=1e-4)
  grad_norm_j = float(jnp.sqrt(sum(jnp.sum(g ** 2) for g in jax.tree.leaves(grads))))
  assert grad_norm_j == pytest.approx(grad_norm_t, rel=1e-3)
  # One gradient leaf compared directly: the predictor's mask token.
  np.testing.assert_allclose(grads["predictor"]["mask_token"], ref.predictor.mask_token.grad.numpy().reshape(-1),
                             rtol=1e-3, atol=1e-6)
