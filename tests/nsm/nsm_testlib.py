"""Shared helpers of the nsm tests: random multigraphs, padding, randomised parameters."""
import functools
import math

import jax
import jax.numpy as jnp
import jraph
import numpy as np

from nsm import graphs as graphs_lib

R, F = 5, 6


def random_graph(rng, n, e, feat=F, num_relations=R, label=0):
  return jraph.GraphsTuple(
      nodes=rng.standard_normal((n, feat)), senders=rng.integers(n, size=e).astype(np.int32),
      receivers=rng.integers(n, size=e).astype(np.int32),
      edges={"type": rng.integers(num_relations, size=e).astype(np.int32),
             "conf": rng.uniform(0.5, 1.0, e)},
      n_node=np.array([n], np.int32), n_edge=np.array([e], np.int32),
      globals={"label": np.array([label], np.int32), "size": np.array([[math.log1p(n), math.log1p(e)]])})


def padded(graphs, budget):
  return jax.tree.map(jnp.asarray, graphs_lib.batch_graphs(graphs, budget, R))


BUDGET = graphs_lib.Budget(40, 90, 9)


def perturbed_init(init, g, seed=0, scale=0.3):
  """Init, then randomise every parameter (the zero-initialised coupling outputs included)."""
  return _perturb(init(jax.random.PRNGKey(seed), g), jax.random.PRNGKey(seed + 1), scale)


@functools.partial(jax.jit, static_argnums=2)
def _perturb(params, key, scale):
  # One program: op by op, each parameter shape compiled its own normal sampler (~0.5 s each).
  leaves, tree = jax.tree.flatten(params)
  keys = jax.random.split(key, len(leaves))
  return jax.tree.unflatten(tree, [x + scale * jax.random.normal(k, x.shape, x.dtype)
                                   for x, k in zip(leaves, keys)])
