"""The hierarchical NSM (model.kind="hier"): the head reads only the top level, the cycle is real.

Issue 17: on the session-2 model (now model.kind="legacy_v2") the head read the L1 R-GCN features
directly and the cycle loss was ~1e-14 on retained nodes by construction, with every dropped node
reconstructed as the same vector. These tests fail on that model (checked: the legacy_v2 branch
of each test asserts the defect).
"""
import flax.linen as nn
import jax
import jax.numpy as jnp
import jraph
import numpy as np
import pytest

from nsm import graphs as graphs_lib
from nsm import layers
from nsm import model as model_lib
from tests.nsm.nsm_testlib import BUDGET, R, padded, perturbed_init, random_graph


def hier_setup(**kw):
  cfg = model_lib.NSMConfig(num_relations=R, hidden=12, num_bases=3, rgcn_layers=1,
                            clusters=(4, 2), dropout=0.0, **kw)
  return model_lib.build_model(cfg)


HIER = hier_setup()
H_INIT, H_APPLY = jax.jit(HIER.init), jax.jit(HIER.apply)
LEGACY = model_lib.build_model(model_lib.NSMConfig(
    num_relations=R, kind="legacy_v2", hidden=12, num_bases=3, coupling_hidden=16, rgcn_layers=1,
    coupling_layers=2, dropout=0.0))
L_INIT, L_APPLY = jax.jit(LEGACY.init), jax.jit(LEGACY.apply)


def zero_readout(level):
  """Interceptor: the output of every readout submodule named readout_<level> becomes zero."""
  def interceptor(next_fun, args, kwargs, context):
    out = next_fun(*args, **kwargs)
    if context.module.name == f"readout_{level}" and context.method_name == "__call__":
      return jnp.zeros_like(out)
    return out
  return interceptor


def _batch(seed=0, sizes=(6, 9, 4)):
  rng = np.random.default_rng(seed)
  return padded([random_graph(rng, n, 2 * n) for n in sizes], BUDGET)


@pytest.mark.parametrize("kind", ["hier", "legacy_v2"])
def test_zeroing_the_l1_readout_path_changes_nothing_only_in_hier(x64, kind):
  """hier: the head reads L3 only (zeroing any L1 readout is a no-op; zeroing L3's is not).

  legacy_v2 (readout_levels=all) fails the first property: its head reads L1 directly.
  """
  g = _batch()
  model, init = (HIER, H_INIT) if kind == "hier" else (LEGACY, L_INIT)
  params = perturbed_init(init, g)
  logits = (H_APPLY if kind == "hier" else L_APPLY)(params, g)[0]

  def apply_zeroed(level):  # interceptors act at trace time: trace under the context
    with nn.intercept_methods(zero_readout(level)):
      return jax.jit(lambda p: model.apply(p, g)[0])(params)
  no_l1, no_l3 = apply_zeroed("l1"), apply_zeroed("l3")
  real = np.asarray(jraph.get_graph_padding_mask(g))
  assert float(jnp.abs(logits - no_l3)[real].max()) > 1e-3  # the head does use L3
  l1_effect = float(jnp.abs(logits - no_l1)[real].max())
  if kind == "hier":
    assert l1_effect == 0.0
  else:
    assert l1_effect > 1e-3  # the bypass issue 17 found


def test_hier_logits_are_a_function_of_the_top_level_only(x64):
  """logits == head(readout(h3, mass3), size): nothing else of L1/L2 reaches the head."""
  g = _batch(1)
  params = perturbed_init(H_INIT, g)
  logits, aux = H_APPLY(params, g)
  c = HIER.cfg
  z = layers.ClusterReadout(c.readout).apply({}, aux["h3"], aux["mass3"])
  z = jnp.concatenate([z, g.globals["size"]], -1)
  head = layers.GraphHead(c.hidden, c.num_classes)
  np.testing.assert_allclose(head.apply({"params": params["params"]["head"]}, z, False), logits,
                             atol=1e-12)
  assert aux["h3"].shape == (BUDGET.n_graph, 2, 12)  # K3 = 2 top-level nodes per graph
  # ... and the input graph does reach L3: the gradient wrt the input features is non-zero.
  grad = jax.grad(lambda x: H_APPLY(params, g._replace(nodes=x))[0][:3].sum())(g.nodes)
  assert float(jnp.abs(grad[:19]).min(-1).max()) > 0 and float(jnp.abs(grad[:19]).sum()) > 1e-3


def test_soft_assignments_partition_each_graph_and_coarse_edges_conserve_mass(x64):
  g = _batch(2)
  params = perturbed_init(H_INIT, g)
  _, aux = H_APPLY(params, g)
  s1 = np.asarray(aux["assign_12"])
  alive = np.asarray(jraph.get_node_padding_mask(g))
  np.testing.assert_allclose(s1[alive].sum(-1), 1.0, atol=1e-12)  # each node fully assigned
  assert not s1[~alive].any()  # padding nodes are nobody's members
  # L3 masses are the node counts of each graph (assignments are row-stochastic at both levels).
  np.testing.assert_allclose(np.asarray(aux["mass3"]).sum(-1)[:3], [6, 9, 4], atol=1e-10)


def test_padding_invariance_and_permutation_equivariance(x64):
  rng = np.random.default_rng(3)
  gs = [random_graph(rng, n, 2 * n) for n in (5, 9, 3)]
  batch = padded(gs, BUDGET)
  params = perturbed_init(H_INIT, batch)
  lo, aux = H_APPLY(params, batch)
  for i, gr in enumerate(gs):
    lo_i, aux_i = H_APPLY(params, padded([gr], BUDGET))
    np.testing.assert_allclose(lo[i], lo_i[0], atol=1e-10)
  g = gs[1]
  perm = rng.permutation(9)
  inv = np.argsort(perm)
  gp = g._replace(nodes=g.nodes[perm], senders=inv[g.senders].astype(np.int32),
                  receivers=inv[g.receivers].astype(np.int32))
  lo_a, aux_a = H_APPLY(params, padded([g], BUDGET))
  lo_b, aux_b = H_APPLY(params, padded([gp], BUDGET))
  np.testing.assert_allclose(lo_a[0], lo_b[0], atol=1e-10)
  np.testing.assert_allclose(aux_a["rec1"][:9][perm], aux_b["rec1"][:9], atol=1e-10)
  np.testing.assert_allclose(aux_a["cycle"], aux_b["cycle"], atol=1e-10)


def test_dense_rgcn_equals_sparse_rgcn_on_the_same_graph(x64):
  """The cluster-level layer with 0/1 (multi-)edge counts is the sparse pyg_mean R-GCN."""
  g = jax.tree.map(jnp.asarray, random_graph(np.random.default_rng(4), 7, 20))
  sparse = layers.RGCNLayer(5, R, num_bases=3)
  args = (g.nodes, g.senders, g.receivers, g.edges["type"], g.edges["conf"],
          jnp.ones(20, bool))
  params = sparse.init(jax.random.PRNGKey(2), *args)
  adj = np.zeros((1, R, 7, 7))
  np.add.at(adj, (0, np.asarray(g.edges["type"]), np.asarray(g.senders), np.asarray(g.receivers)), 1.0)
  dense_out = layers.DenseRGCNLayer(5, R, num_bases=3).apply(params, g.nodes[None], jnp.asarray(adj))
  np.testing.assert_allclose(dense_out[0], sparse.apply(params, *args), atol=1e-12)


def test_normalised_error_is_zero_only_for_an_exact_round_trip(x64):
  rng = np.random.default_rng(5)
  x = jnp.asarray(rng.standard_normal((7, 4)))
  w = jnp.array([1, 1, 1, 1, 1, 0, 0], bool)  # last two rows are padding
  assert float(model_lib.normalised_error(x, x, w)) == 0.0
  junk = x.at[5:].set(100.0)  # padding rows may hold anything
  assert float(model_lib.normalised_error(x, junk, w)) == 0.0
  one_off = x.at[2, 1].add(1e-3)  # a single wrong entry in one real row
  assert float(model_lib.normalised_error(x, one_off, w)) > 1e-8
  mean = jnp.broadcast_to(x[:5].mean(0), x.shape)
  np.testing.assert_allclose(model_lib.normalised_error(x, mean, w), 1.0, atol=1e-12)
  np.testing.assert_allclose(model_lib.normalised_error(x, 0 * x, w, center=False), 1.0, atol=1e-12)


@pytest.mark.parametrize("kind", ["hier", "legacy_v2"])
def test_cycle_reconstructs_the_input_through_the_whole_chain(x64, kind):
  """hier: L1' is compared with the *input* features, every node has its own reconstruction and
  no node is reconstructed exactly by construction. legacy_v2 fails all three (issue 17)."""
  g = _batch(6)
  alive = np.asarray(jraph.get_node_padding_mask(g))
  if kind == "legacy_v2":
    params = perturbed_init(L_INIT, g)
    _, aux = L_APPLY(params, g)
    assert aux["rec1"].shape[-1] != g.nodes.shape[-1] or not np.allclose(
        model_lib.normalised_error(g.nodes, aux["rec1"], alive), aux["cycle_l1"])
    dropped = alive & ~np.asarray(aux["keep1"])
    rec = np.asarray(aux["rec1"])[dropped]
    assert np.ptp(rec, axis=0).max() < 1e-12  # every dropped node comes back as C^-1(0)
    assert float(aux["cycle_l1_retained"]) < 1e-10  # exact by construction
    return
  params = perturbed_init(H_INIT, g)
  _, aux = H_APPLY(params, g)
  rec1 = np.asarray(aux["rec1"])
  assert rec1.shape == g.nodes.shape
  np.testing.assert_allclose(aux["cycle_l1"], model_lib.normalised_error(g.nodes, rec1, alive),
                             atol=1e-12)
  per_node = ((np.asarray(g.nodes) - rec1) ** 2).sum(-1)[alive]
  assert per_node.min() > 1e-6 and float(aux["cycle"]) > 0.05  # an untrained WHAT cannot invert
  for lo, hi in ((0, 6), (6, 15), (15, 19)):  # each node of each graph: its own reconstruction
    r = rec1[lo:hi]
    gaps = np.abs(r[:, None] - r[None]).max(-1) + np.eye(hi - lo)
    assert gaps.min() > 1e-9


def test_flat_baseline_is_a_separate_parameter_matched_model():
  rng = np.random.default_rng(7)
  g = jax.tree.map(jnp.asarray, graphs_lib.batch_graphs(
      [random_graph(rng, 6, 10, feat=64, num_relations=26)], graphs_lib.Budget(7, 10, 2), 26))
  nsm = model_lib.build_model(model_lib.NSMConfig(num_relations=26))
  target = model_lib.param_count(nsm, g)
  for depth in (6, 10):
    flat = model_lib.FlatConfig(num_relations=26, depth=depth)
    width = model_lib.matched_flat_width(flat, target, g)
    got = model_lib.param_count(model_lib.FlatRGCN(model_lib.FlatConfig(26, depth, hidden=width)), g)
    assert abs(got - target) / target < 0.03, (depth, width, got, target)
  assert not hasattr(model_lib.NSMConfig, "hierarchical")  # no flat branch inside NSM
