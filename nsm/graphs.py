"""Host-side graph containers: triples -> jraph.GraphsTuple, features, padding budgets, batching.

jraph 0.0.6.dev0 is used only for `GraphsTuple`, `batch_np`, `pad_with_graphs` and the padding
masks (its `zero_out_padding` and `get_fully_connected_graph` crash on current JAX).
"""
from __future__ import annotations

import dataclasses
import functools
import math
import zlib
from typing import Sequence

import jraph
import numpy as np

# Node-kind one-hot slots and role flags of the v2 ("structural") node features.
KIND_SLOTS = 12
ROLE_NAMES = ("query_head", "query_tail")
VALUE_CHANNEL = KIND_SLOTS + len(ROLE_NAMES)  # a scalar attribute (e.g. a plan step's position)
# Thermometer code of the scalar value: channel VALUE_CHANNEL + 1 + j is 1 iff value >= (j+1)/L.
# An ordinal comparison ("step b comes before step a") is then linear with a unit difference per
# level; with the scalar alone two consecutive plan steps differ by 0.05 in one input channel and
# the planning v2 model never learned order violations (nsm/README.md, planning v2 collapse).
ORDINAL_LEVELS = 20
STRUCTURAL_WIDTH = VALUE_CHANNEL + 1 + ORDINAL_LEVELS


@dataclasses.dataclass
class Sample:
  """One generated graph before featurisation.

  Attributes:
    triples: (subject, predicate, object, confidence) in generation order.
    label: graph class.
    kinds: entity name -> kind (must be in the domain's kind list).
    roles: entity name -> role flags (subset of ROLE_NAMES).
    values: entity name -> scalar attribute in [0, 1].
  """
  triples: list
  label: int
  kinds: dict = dataclasses.field(default_factory=dict)
  roles: dict = dataclasses.field(default_factory=dict)
  values: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Dataset:
  """A featurised dataset: single-graph GraphsTuples with numpy leaves."""
  graphs: list  # list[jraph.GraphsTuple]
  labels: np.ndarray  # [num_graphs] int32
  num_relations: int  # relation types incl. inverse copies
  relation_names: tuple


@functools.lru_cache(maxsize=65536)
def entity_embedding(name: str, seed: int, dim: int) -> np.ndarray:
  """Fixed N(0, 1) vector for an entity, a pure function of (seed, name) (no Python hash())."""
  rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
  return rng.standard_normal(dim).astype(np.float32)


def sample_to_graph(sample: Sample, relation_index: dict, kind_index: dict, *, feature_mode: str,
                    feature_dim: int, seed: int, inverse_edges: bool) -> jraph.GraphsTuple:
  """Turns triples into one directed multigraph (nodes in first-seen order, edges subject->object).

  feature_mode "random": fixed seeded N(0,1) features per entity (legacy parity: the original drew
  fresh noise on every read). "structural": kind one-hot, role flags, the scalar value and its
  thermometer code (ORDINAL_LEVELS channels).
  """
  names: dict = {}
  for s, _, o, _ in sample.triples:
    for e in (s, o):
      if e not in names:
        names[e] = len(names)
  for e in sample.kinds:  # entities no triple mentions are isolated nodes (keeps counts label-free)
    if e not in names:
      names[e] = len(names)
  if not names:
    raise ValueError("graph is empty: a sample needs at least one triple (node)")
  n = len(names)
  if feature_mode == "random":
    nodes = np.stack([entity_embedding(e, seed, feature_dim) for e in names])
  elif feature_mode == "structural":
    if feature_dim < STRUCTURAL_WIDTH:
      raise ValueError(f"config.data.feature_dim={feature_dim} is invalid: allowed >= {STRUCTURAL_WIDTH}")
    nodes = np.zeros((n, feature_dim), np.float32)
    for e, i in names.items():
      nodes[i, kind_index[sample.kinds[e]]] = 1.0
      for r in sample.roles.get(e, ()):
        nodes[i, KIND_SLOTS + ROLE_NAMES.index(r)] = 1.0
      value = sample.values.get(e, 0.0)
      nodes[i, VALUE_CHANNEL] = value
      levels = min(int(np.floor(value * ORDINAL_LEVELS + 1e-6)), ORDINAL_LEVELS)
      nodes[i, VALUE_CHANNEL + 1:VALUE_CHANNEL + 1 + levels] = 1.0
  else:
    raise ValueError(f"feature_mode={feature_mode!r} is invalid: allowed random, structural")
  senders = np.array([names[s] for s, _, _, _ in sample.triples], np.int32)
  receivers = np.array([names[o] for _, _, o, _ in sample.triples], np.int32)
  etype = np.array([relation_index[p] for _, p, _, _ in sample.triples], np.int32)
  conf = np.array([c for _, _, _, c in sample.triples], np.float32)
  num_base = len(relation_index)
  if inverse_edges:
    senders, receivers = np.concatenate([senders, receivers]), np.concatenate([receivers, senders])
    etype = np.concatenate([etype, etype + num_base])
    conf = np.concatenate([conf, conf])
  n_edge = len(senders)
  return jraph.GraphsTuple(
      nodes=nodes, edges={"type": etype, "conf": conf}, senders=senders, receivers=receivers,
      n_node=np.array([n], np.int32), n_edge=np.array([n_edge], np.int32),
      globals={"label": np.array([sample.label], np.int32),
               "size": np.array([[math.log1p(n), math.log1p(len(sample.triples))]], np.float32)})


def check_graph(graph: jraph.GraphsTuple, num_relations: int) -> None:
  """Host-side range checks: JAX clamps out-of-range gathers and drops out-of-range segment ids."""
  etype = np.asarray(graph.edges["type"])
  if etype.size and (etype.min() < 0 or etype.max() >= num_relations):
    bad = int(etype.max()) if etype.max() >= num_relations else int(etype.min())
    raise ValueError(f"edge type {bad} is invalid: allowed 0 <= edge type < num_relations={num_relations}")
  n_node = np.asarray(graph.n_node)
  if np.any(n_node <= 0):
    raise ValueError(f"graph.n_node={n_node.tolist()} is invalid: allowed every graph has >= 1 node "
                     "(empty graphs cannot be pooled or classified)")
  n = int(n_node.sum())
  for field in ("senders", "receivers"):
    idx = np.asarray(getattr(graph, field))
    if idx.size and (idx.min() < 0 or idx.max() >= n):
      raise ValueError(f"graph.{field} contains {int(idx.max())}: allowed node ids in [0, {n})")


@dataclasses.dataclass(frozen=True)
class Budget:
  """Static padded sizes so that every batch has identical shapes (one compile)."""
  n_node: int
  n_edge: int
  n_graph: int


def padding_budget(graphs: Sequence[jraph.GraphsTuple], batch_size: int) -> Budget:
  """The exact worst case of any batch of `batch_size` of `graphs`: the node (edge) counts of the
  batch_size largest graphs summed, +1 node for the padding graph.

  (Sessions 1-8 used batch_size x the largest graph: causal v2 at batch 64 padded to 2,113 nodes
  and 4,608 edges instead of 1,839 and 3,940, and every padded row costs compute.)
  """
  nodes = sorted((int(g.n_node[0]) for g in graphs), reverse=True)[:batch_size]
  edges = sorted((int(g.n_edge[0]) for g in graphs), reverse=True)[:batch_size]
  return Budget(n_node=sum(nodes) + 1, n_edge=sum(edges), n_graph=batch_size + 1)


def batch_graphs(graphs: Sequence[jraph.GraphsTuple], budget: Budget,
                 num_relations: int) -> jraph.GraphsTuple:
  """Concatenates graphs and pads them to `budget` with jraph (host-side numpy)."""
  if len(graphs) > budget.n_graph - 1:
    raise ValueError(f"batch of {len(graphs)} graphs is invalid: allowed <= {budget.n_graph - 1}")
  batch = jraph.batch_np(list(graphs))
  check_graph(batch, num_relations)
  return jraph.pad_with_graphs(batch, budget.n_node, budget.n_edge, budget.n_graph)

