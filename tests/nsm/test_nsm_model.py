"""NSM model ground truths: R-GCN vs a dense loop, padding/permutation, top-k, exact inverse.

The legacy_v2 model (nsm/legacy.py) keeps its session-2 tests; the hierarchical model's tests are
in test_nsm_hierarchy.py.
"""
import fractions
import math

import jax
import jax.numpy as jnp
import jraph
import numpy as np
import pytest

from nsm import graphs as graphs_lib
from nsm import layers
from nsm import legacy
from nsm import model as model_lib
from tests.nsm.nsm_testlib import BUDGET, F, R, padded, perturbed_init, random_graph

def dense_rgcn(x, g, basis, comp, root_w, root_b, mode):
  """Per-relation loop with dense adjacency matrices (the textbook formula)."""
  n = x.shape[0]
  w = np.einsum("rb,bio->rio", comp[:R], basis)
  out = x @ root_w + root_b
  s, r, t, c = (np.asarray(a) for a in (g.senders, g.receivers, g.edges["type"], g.edges["conf"]))
  if mode == "pyg_mean":
    for rel in range(R):
      a = np.zeros((n, n))
      for k in range(len(s)):
        if t[k] == rel:
          a[r[k], s[k]] += 1.0
      deg = a.sum(1, keepdims=True)
      out = out + np.where(deg > 0, (a / np.maximum(deg, 1)) @ x @ w[rel], 0.0)
  else:
    acc = x @ np.einsum("b,bio->io", comp[R], basis)  # self-loop relation row
    deg = np.ones((n, 1))
    for rel in range(R):
      a = np.zeros((n, n))
      for k in range(len(s)):
        if t[k] == rel:
          a[r[k], s[k]] += c[k]
          deg[r[k]] += 1
      acc = acc + a @ x @ w[rel]
    out = out + acc / deg
  return out


@pytest.mark.parametrize("impl", layers.IMPLS)
@pytest.mark.parametrize("mode", ["pyg_mean", "nsm_mean"])
def test_rgcn_matches_dense_per_relation_loop(x64, mode, impl):
  rng = np.random.default_rng(0)
  g = graphs_lib.batch_graphs([random_graph(rng, 7, 15), random_graph(rng, 4, 6)],
                              graphs_lib.Budget(14, 25, 4), R)
  layer = layers.RGCNLayer(8, R, num_bases=3, aggregation=mode, impl=impl)
  emask = jraph.get_edge_padding_mask(jax.tree.map(jnp.asarray, g))
  args = (jnp.asarray(g.nodes), g.senders, g.receivers, g.edges["type"], g.edges["conf"], emask)
  params = jax.jit(layer.init)(jax.random.PRNGKey(1), *args)
  out = np.asarray(jax.jit(layer.apply)(params, *args))
  p = jax.tree.map(np.asarray, params["params"])
  # Reference on the real nodes/edges only (padding removed).
  real = jraph.unpad_with_graphs(jax.tree.map(np.asarray, g))
  ref = dense_rgcn(np.asarray(real.nodes), real, p["basis"], p["comp"], p["root"]["kernel"],
                   p["root"]["bias"], mode)
  np.testing.assert_allclose(out[:11], ref, atol=1e-5)


def nsm_setup(ratio=0.5, **kw):
  # Shallow (1 R-GCN layer, 2 couplings per level) to keep compile time low; the properties
  # tested do not depend on depth.
  cfg = model_lib.NSMConfig(num_relations=R, kind="legacy_v2", hidden=12, num_bases=3,
                            coupling_hidden=16, rgcn_layers=1, coupling_layers=2, pool_ratio=ratio,
                            dropout=0.0, **kw)
  return model_lib.build_model(cfg)


# One model, one jitted init/apply and one static shape for the float64 tests: one compile each.
MODEL = nsm_setup()
INIT, APPLY = jax.jit(MODEL.init), jax.jit(MODEL.apply)


def test_padding_invariance(x64):
  """Each graph alone (lots of padding) gives the same outputs as inside a batch of three."""
  rng = np.random.default_rng(1)
  gs = [random_graph(rng, n, 2 * n) for n in (5, 9, 3)]
  batch = padded(gs, BUDGET)
  params = perturbed_init(INIT, batch)
  lo, aux = APPLY(params, batch)
  start = 0
  for i, g in enumerate(gs):
    lo_i, aux_i = APPLY(params, padded([g], BUDGET))
    n = int(g.n_node[0])
    np.testing.assert_allclose(lo[i], lo_i[0], atol=1e-10)
    np.testing.assert_array_equal(aux["keep2"][start:start + n], aux_i["keep2"][:n])
    np.testing.assert_allclose(aux["h2"][start:start + n], aux_i["h2"][:n], atol=1e-10)
    assert not aux_i["keep1"][n:].any()  # padding nodes are never kept
    start += n
  assert int(aux["keep1"].sum()) == 3 + 5 + 2  # ceil(n/2) per graph
  # WHAT(WHY(h)) is exact on retained nodes; dropped nodes come back as C^-1(0).
  assert float(aux["cycle_l1_retained"]) < 1e-10 < 1e-2 < float(aux["cycle_l1_dropped"])


def test_node_permutation_equivariance(x64):
  rng = np.random.default_rng(2)
  g = random_graph(rng, 10, 25)
  perm = rng.permutation(10)
  inv = np.argsort(perm)
  g_perm = g._replace(nodes=g.nodes[perm], senders=inv[g.senders].astype(np.int32),
                      receivers=inv[g.receivers].astype(np.int32))
  a, b = padded([g], BUDGET), padded([g_perm], BUDGET)
  params = perturbed_init(INIT, a)
  lo_a, aux_a = APPLY(params, a)
  lo_b, aux_b = APPLY(params, b)
  np.testing.assert_allclose(lo_a[0], lo_b[0], atol=1e-10)
  np.testing.assert_allclose(aux_a["h1"][:10][perm], aux_b["h1"][:10], atol=1e-10)
  np.testing.assert_array_equal(np.asarray(aux_a["keep2"])[:10][perm], aux_b["keep2"][:10])


@pytest.mark.parametrize("ratio", [0.13, 0.3, 0.5, 2 / 3, 1.0])
def test_topk_keeps_ceil_ratio_n_per_graph(ratio):
  rng = np.random.default_rng(3)
  n_node = np.array([1, 10, 7, 3, 0, 5], np.int32)  # last real-looking 0 = empty padding graph
  total = int(n_node.sum())
  score = jnp.asarray(rng.standard_normal(total), jnp.float32)
  alive = jnp.asarray(rng.random(total) < 0.8)
  keep = np.asarray(legacy.topk_keep(score, alive, jnp.asarray(n_node), ratio))
  frac = fractions.Fraction(ratio).limit_denominator(10_000)
  start = 0
  for n in n_node:
    a, k_mask, s = np.asarray(alive)[start:start + n], keep[start:start + n], np.asarray(score)[start:start + n]
    n_alive = int(a.sum())
    k = math.ceil(n_alive * frac)
    assert k_mask.sum() == k and not (k_mask & ~a).any()
    if k:  # the kept nodes are the highest-scoring alive ones
      assert s[k_mask].min() >= np.sort(s[a])[::-1][k - 1]
    start += n
  assert legacy.pool_sizes(jnp.array([10]), 0.3)[0] == 3  # float ceil(0.3*10) would give 4


def test_coupling_exact_inverse(x64):
  stack = legacy.CouplingStack(features=12, num_layers=3, hidden=16)
  x = jax.random.normal(jax.random.PRNGKey(0), (20, 12))
  params = perturbed_init(stack.init, x, scale=0.5)
  y = stack.apply(params, x)
  assert float(jnp.abs(y - x).max()) > 0.1  # a non-trivial map
  back = stack.apply(params, y, method=legacy.CouplingStack.inverse)
  np.testing.assert_allclose(back, x, atol=1e-12)


def test_ratio_one_cycle_reconstruction_is_exact():
  """float32 on purpose: WHAT(WHY(h)) = h to < 1e-5 when nothing is dropped."""
  rng = np.random.default_rng(4)
  gs = [random_graph(rng, n, 2 * n) for n in (6, 4)]
  g = jax.tree.map(lambda x: jnp.asarray(x, jnp.float32) if x.dtype == np.float64 else jnp.asarray(x),
                   graphs_lib.batch_graphs(gs, graphs_lib.Budget(12, 20, 3), R))
  model = nsm_setup(ratio=1.0)
  params = perturbed_init(jax.jit(model.init), g)
  _, aux = jax.jit(model.apply)(params, g)
  assert float(aux["cycle"]) < 1e-5
  assert float(jnp.abs(aux["rec1"][:10] - aux["h1"][:10]).max()) < 1e-5
  assert float(jnp.abs(aux["rec2"][:10] - aux["h2"][:10]).max()) < 1e-5
  assert float(jnp.abs(aux["h1"][:10]).max()) > 0.1
  assert bool(aux["keep2"][:10].all())


def test_bad_inputs_raise_clear_errors():
  rng = np.random.default_rng(5)
  g = random_graph(rng, 4, 6)
  g_bad = g._replace(edges={"type": np.array([0, 1, 2, 3, 4, 5], np.int32), "conf": g.edges["conf"]})
  with pytest.raises(ValueError, match="edge type 5 is invalid.*num_relations=5"):
    graphs_lib.batch_graphs([g_bad], graphs_lib.Budget(5, 6, 2), R)
  empty = g._replace(nodes=np.zeros((0, F)), n_node=np.array([0], np.int32), senders=np.zeros(0, np.int32),
                     receivers=np.zeros(0, np.int32), n_edge=np.array([0], np.int32),
                     edges={"type": np.zeros(0, np.int32), "conf": np.zeros(0)})
  with pytest.raises(ValueError, match="empty graphs"):
    graphs_lib.batch_graphs([g, empty], graphs_lib.Budget(6, 6, 3), R)
  for ratio in (0.0, 1.5, -0.2):
    with pytest.raises(ValueError, match=r"pool_ratio=.* is invalid: allowed \(0, 1\]"):
      model_lib.NSMConfig(num_relations=R, pool_ratio=ratio)
  with pytest.raises(ValueError, match="aggregation='sum' is invalid"):
    model_lib.NSMConfig(num_relations=R, aggregation="sum")


@pytest.mark.parametrize("kind", ["hier", "legacy_v2"])
@pytest.mark.parametrize("num_relations", [26, 38, 82])  # causal, planning, kg (with inverses)
def test_param_count_in_band(num_relations, kind):
  cfg = model_lib.NSMConfig(num_relations=num_relations, kind=kind)
  g = jax.tree.map(jnp.asarray, graphs_lib.batch_graphs(
      [random_graph(np.random.default_rng(0), 5, 8, feat=64, num_relations=num_relations)],
      graphs_lib.Budget(6, 8, 2), num_relations))
  n = model_lib.param_count(model_lib.build_model(cfg), g)
  assert 200_000 <= n <= 500_000, n


def test_l3_readout_is_the_head_on_pooled_l3_nodes_only(x64):
  """readout_levels=l3: the head's first layer sees mean||max over the kept L3 nodes (+ size)."""
  model = nsm_setup(readout_levels="l3")
  rng = np.random.default_rng(6)
  gs = [random_graph(rng, n, 2 * n) for n in (6, 9)]
  g = padded(gs, BUDGET)
  params = perturbed_init(jax.jit(model.init), g)
  (logits, aux), inter = model.apply(params, g, capture_intermediates=True, mutable=["intermediates"])
  it = inter["intermediates"]
  z2, s2 = it["coupling_23"]["__call__"][0], it["score_23"]["__call__"][0][:, 0]
  keep = np.asarray(aux["keep2"])
  top = np.asarray(z2 * jnp.tanh(s2)[:, None])
  expected, start = [], 0
  for i, gr in enumerate(gs):
    n = int(gr.n_node[0])
    x = top[start:start + n][keep[start:start + n]]
    assert len(x) == math.ceil(math.ceil(n / 2) / 2)  # two halvings of the graph
    expected.append(np.concatenate([x.mean(0), x.max(0), np.asarray(g.globals["size"][i])]))
    start += n
  head = params["params"]["head"]["Dense_0"]
  np.testing.assert_allclose(np.asarray(it["head"]["Dense_0"]["__call__"][0][:2]),
                             np.stack(expected) @ head["kernel"] + head["bias"], atol=1e-10)
  assert logits.shape == (BUDGET.n_graph, 2)
