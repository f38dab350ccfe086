"""bk.model: causality, BK features against a dense resolvent, MoE routing, parameter matching."""
import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bk import model as model_lib
from bk import moe

CFG = model_lib.ModelConfig(vocab_size=50, d_model=16, num_layers=2, num_heads=3, max_len=32,
                            dropout=0.0, attn_heads=2, transformer_mlp_dim=24,
                            bk_method="sequential")  # the scan is tested in test_core*


@functools.partial(jax.jit, static_argnums=0)
def _logits(cfg, params, tokens):
  return model_lib.LanguageModel(cfg).apply({"params": params}, tokens)[0]


@pytest.mark.parametrize("arch,causal,method", [
    ("resnet_bk", True, "scan"), ("resnet_bk", True, "sequential"), ("transformer", True, "scan"),
    ("resnet_bk", False, "scan")])
def test_causality(arch, causal, method):
  """Changing token j changes the logits at positions >= j only (unless non-causal).

  "scan" is the default core (blocked associative scan): the blocks before j must not see j.
  """
  cfg = dataclasses.replace(CFG, arch=arch, causal=causal, bk_method=method)
  params = model_lib.init_params(cfg, jax.random.key(0))
  tokens = jax.random.randint(jax.random.key(1), (2, 30), 0, cfg.vocab_size)
  j = 17
  moved = tokens.at[:, j].set((tokens[:, j] + 1) % cfg.vocab_size)
  diff = np.abs(np.asarray(_logits(cfg, params, tokens) - _logits(cfg, params, moved)))
  after = diff[:, j:].max()
  assert after > 1e-3
  if causal:
    assert diff[:, :j].max() == 0.0  # bit-identical before j
  else:
    assert diff[:, j - 1].max() > 1e-4  # the original's leak: position j-1 sees token j


def _dense_causal_diagonal(v, z):
  """[(H_{0..i} - z)^-1]_{ii} for H = tridiag(1, -2 + v, 1), float64 dense inverses."""
  n = len(v)
  h = np.diag(-2.0 + v) + np.diag(np.ones(n - 1), 1) + np.diag(np.ones(n - 1), -1)
  return np.array([np.linalg.inv(h[:i + 1, :i + 1] - z * np.eye(i + 1))[i, i]
                   for i in range(n)])


@pytest.mark.parametrize("method", ["scan", "sequential"])
def test_bk_features_equal_dense_causal_resolvent(method):
  cfg = dataclasses.replace(CFG, num_heads=3, z_imag_max=1.0, z_imag_min=0.1, z_real=0.3,
                            bk_method=method)
  params = model_lib.init_params(cfg, jax.random.key(0))
  tokens = jax.random.randint(jax.random.key(2), (1, 20), 0, cfg.vocab_size)
  _, st = model_lib.LanguageModel(cfg).apply({"params": params}, tokens,
                                             mutable=["intermediates"])
  z = model_lib.head_shifts(cfg)
  np.testing.assert_allclose(z.imag, [1.0, np.sqrt(0.1), 0.1], rtol=1e-6)
  for layer in ("block0", "block1"):
    inter = st["intermediates"][layer]["bk"]
    v, g = np.asarray(inter["v"][0][0], np.float64), np.asarray(inter["G"][0][0])
    assert np.abs(v).max() <= cfg.v_max
    for h in range(3):
      ref = _dense_causal_diagonal(v[:, h], complex(z[h])) * z[h].imag
      np.testing.assert_allclose(g[h], ref, rtol=2e-4, atol=2e-5)


def test_switch_moe_output_and_router_gradient():
  layer = moe.SparseMoE(num_experts=3, top_k=1, hidden=8, router="switch")
  x = jax.random.normal(jax.random.key(0), (2, 5, 4))
  params = jax.jit(lambda k: layer.init(k, x, train=False))(jax.random.key(1))["params"]
  out, stats = jax.jit(lambda p: layer.apply({"params": p}, x, train=False))(params)
  # Ground truth: gate * expert_e(x) with e = argmax of the router softmax.
  logits = x @ params["router"]["kernel"] + params["router"]["bias"]
  probs = jax.nn.softmax(logits)
  e = jnp.argmax(probs, -1)
  hid = jax.nn.relu(jnp.einsum("bnd,edf->bnef", x, params["w1"]) + params["b1"])
  y = jnp.einsum("bnef,efd->bned", hid, params["w2"]) + params["b2"]
  chosen = jnp.take_along_axis(y, e[..., None, None], axis=2)[:, :, 0]
  gate = jnp.take_along_axis(probs, e[..., None], -1)
  np.testing.assert_allclose(out, gate * chosen, rtol=1e-5, atol=1e-6)
  usage = np.bincount(np.asarray(e).ravel(), minlength=3) / 10
  np.testing.assert_allclose(stats["usage"], usage, atol=1e-7)
  np.testing.assert_allclose(stats["load_balance"], 3 * np.sum(usage * probs.mean((0, 1))),
                             rtol=1e-6)
  g = jax.jit(jax.grad(lambda p: jnp.sum(layer.apply({"params": p}, x, train=False)[0] ** 2)))(
      params)
  assert np.abs(np.asarray(g["router"]["kernel"])).max() > 1e-4  # the router learns


def test_gumbel_router_straight_through_gradient():
  layer = moe.SparseMoE(num_experts=4, top_k=1, hidden=8, router="gumbel")
  x = jax.random.normal(jax.random.key(0), (2, 6, 4))
  params = jax.jit(lambda k1, k2: layer.init({"params": k1, "gumbel": k2}, x, train=True))(
      jax.random.key(1), jax.random.key(2))["params"]
  f = lambda p: jnp.sum(layer.apply({"params": p}, x, train=True,
                                    rngs={"gumbel": jax.random.key(3)})[0] ** 2)
  g = jax.jit(jax.grad(f))(params)
  assert np.abs(np.asarray(g["router"]["kernel"])).max() > 1e-4
  # Evaluation routes deterministically: the output is the argmax expert's, gate 1.
  evaluate = jax.jit(lambda p: layer.apply({"params": p}, x, train=False)[0])
  out = evaluate(params)
  logits = x @ params["router"]["kernel"] + params["router"]["bias"]
  e = jnp.argmax(logits, -1)
  hid = jax.nn.relu(jnp.einsum("bnd,edf->bnef", x, params["w1"]) + params["b1"])
  y = jnp.einsum("bnef,efd->bned", hid, params["w2"]) + params["b2"]
  np.testing.assert_allclose(out, jnp.take_along_axis(y, e[..., None, None], axis=2)[:, :, 0],
                             rtol=1e-5, atol=1e-6)


def test_transformer_matched_to_resnet_bk_parameters():
  bk = dataclasses.replace(CFG, num_experts=4, num_heads=2)
  for match, key in (("total", "non_embedding"), ("active", "active_non_embedding")):
    mlp = model_lib.matched_mlp_dim(bk, match)
    tr = dataclasses.replace(bk, arch="transformer", transformer_mlp_dim=mlp)
    target = model_lib.param_counts(bk)[key]
    got = model_lib.param_counts(tr)["non_embedding"]
    assert abs(got - target) <= 2 * bk.d_model + 1  # one MLP unit = 2D + 1 parameters
    assert model_lib.param_counts(tr)["embedding"] == model_lib.param_counts(bk)["embedding"]


def test_remat_and_bf16_match_float32():
  cfg = dataclasses.replace(CFG, num_layers=1)
  tokens = jax.random.randint(jax.random.key(1), (2, 10), 0, cfg.vocab_size)
  params = model_lib.init_params(cfg, jax.random.key(0))
  loss = lambda cfg: jax.jit(jax.value_and_grad(lambda p: jnp.mean(_logits(cfg, p, tokens) ** 2)))
  l0, g0 = loss(cfg)(params)
  l1, g1 = loss(dataclasses.replace(cfg, remat=True))(params)
  np.testing.assert_allclose(l0, l1, rtol=1e-6)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6), g0, g1)
  lb = _logits(dataclasses.replace(cfg, dtype="bfloat16"), params, tokens)
  lf = _logits(cfg, params, tokens)
  assert lb.dtype == jnp.float32
  assert float(jnp.max(jnp.abs(lb - lf))) < 0.1 * float(jnp.max(jnp.abs(lf)))


def test_sequence_longer_than_position_table_raises():
  params = model_lib.init_params(CFG, jax.random.key(0))
  with pytest.raises(ValueError, match="sequence length=33 is invalid: allowed <= "
                     "model.max_len=32"):
    _logits(CFG, params, jnp.zeros((1, 33), jnp.int32))
