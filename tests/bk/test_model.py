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


@pytest.mark.parametrize("arch,causal,method,mixer", [
    ("resnet_bk", True, "scan", "bk"), ("resnet_bk", True, "sequential", "bk"),
    ("transformer", True, "scan", "bk"), ("resnet_bk", False, "scan", "bk"),
    ("resnet_bk", True, "scan", "lru")])
def test_causality(arch, causal, method, mixer):
  """Changing token j changes the logits at positions >= j only (unless non-causal).

  "scan" is the default core (blocked associative scan): the blocks before j must not see j.
  The LRU mixer's associative scan must not let position j reach earlier positions either.
  """
  cfg = dataclasses.replace(CFG, arch=arch, causal=causal, bk_method=method, mixer=mixer)
  params = model_lib.init_params(cfg, jax.random.key(0))
  tokens = jax.random.randint(jax.random.key(1), (2, 30), 0, cfg.vocab_size)
  j = 17
  moved = tokens.at[:, j].set((tokens[:, j] + 1) % cfg.vocab_size)
  logits = _logits(cfg, params, tokens)
  assert logits.shape == (2, 30, cfg.vocab_size)
  diff = np.abs(np.asarray(logits - _logits(cfg, params, moved)))
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


def test_linear_recurrence_associative_scan_equals_sequential_scan():
  """h_t = lam h_{t-1} + u_t: the associative scan vs a sequential lax.scan reference."""
  k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
  p = 5
  lam = (jax.random.uniform(k1, (p,), minval=0.5, maxval=0.999)
         * jnp.exp(1j * jax.random.uniform(k2, (p,), maxval=6.28))).astype(jnp.complex64)
  u = jax.random.normal(k3, (3, 257, 2 * p))
  u = jax.lax.complex(u[..., :p], u[..., p:])

  def sequential(u_b):
    return jax.lax.scan(lambda h, ut: (lam * h + ut,) * 2, jnp.zeros((p,), jnp.complex64),
                        u_b)[1]

  ref = jax.jit(jax.vmap(sequential))(u)
  got = jax.jit(model_lib.linear_recurrence)(lam, u)
  np.testing.assert_allclose(np.asarray(got), np.asarray(ref), rtol=2e-5, atol=2e-5)
  np.testing.assert_allclose(np.asarray(got[:, 0]), np.asarray(u[:, 0]))  # h_0 = u_0


def test_lru_layer_equals_float64_recurrence_with_gamma_normalisation():
  cfg = dataclasses.replace(CFG, mixer="lru", lru_state_dim=3, lru_r_min=0.6, lru_r_max=0.95)
  layer = model_lib.LRULayer(cfg)
  f = jax.random.normal(jax.random.key(1), (2, 12, cfg.d_model))
  params = jax.jit(lambda k: layer.init(k, f))(jax.random.key(0))["params"]
  out = np.asarray(jax.jit(lambda p: layer.apply({"params": p}, f)[0])(params), np.float64)
  pr = jax.tree.map(lambda a: np.asarray(a, np.float64), params)
  lam = np.exp(-np.exp(pr["nu_log"]) + 1j * np.exp(pr["theta_log"]))
  assert np.all((np.abs(lam) >= 0.6 - 1e-6) & (np.abs(lam) <= 0.95 + 1e-6))
  bu = np.asarray(f, np.float64) @ pr["input"]["kernel"] + pr["input"]["bias"]
  u = (bu[..., :3] + 1j * bu[..., 3:]) * np.sqrt(1 - np.abs(lam) ** 2)
  h = np.zeros((2, 3), complex)
  hs = []
  for t in range(12):
    h = lam * h + u[:, t]
    hs.append(h)
  hs = np.stack(hs, 1)
  feats = np.concatenate([hs.real, hs.imag], -1)
  ref = pr["lru_scale"] * (feats @ pr["features"]["kernel"] + pr["features"]["bias"])
  np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-5)


def test_lru_mixer_keeps_everything_but_the_mixer():
  bk = dataclasses.replace(CFG, num_experts=4)
  lru = dataclasses.replace(bk, mixer="lru")
  pb = jax.eval_shape(lambda: model_lib.init_params(bk, jax.random.key(0)))
  pl = jax.eval_shape(lambda: model_lib.init_params(lru, jax.random.key(0)))
  assert set(pb["block0"]) - {"bk"} == set(pl["block0"]) - {"lru"}  # ln, moe
  assert jax.tree.map(lambda a: a.shape, pb["block0"]["moe"]) == jax.tree.map(
      lambda a: a.shape, pl["block0"]["moe"])
  p, d = bk.num_heads, bk.d_model  # P = H complex channels by default
  assert model_lib.count_params(pl["block0"]["lru"]) == (d * 2 * p + 2 * p) + (
      2 * p * d + d) + 2 * p + 1
  with pytest.raises(ValueError, match="model.mixer='gru' is invalid"):
    model_lib.init_params(dataclasses.replace(bk, mixer="gru"), jax.random.key(0))
