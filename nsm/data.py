"""NSM datasets: generation (nsm.domains), featurisation, 70/15/15 split, padded batches."""
from __future__ import annotations

import dataclasses
import zlib

import jraph
import numpy as np

from nsm import domains
from nsm import graphs as graphs_lib

MODES = ("v2", "legacy")


def domain_rng(domain: str, mode: str, seed: int) -> np.random.Generator:
  """Generator keyed by (seed, domain, mode) via crc32: stable across processes."""
  return np.random.default_rng([seed, zlib.crc32(f"{domain}/{mode}".encode())])


def build_dataset(domain: str, mode: str, num_graphs: int, seed: int, *, feature_dim: int = 64,
                  inverse_edges: bool = True, hops: int = 0) -> graphs_lib.Dataset:
  """Generates and featurises `num_graphs` graphs of `domain` in label mode `mode`.

  hops: the domain's reasoning-depth knob (nsm.domains; 0 = the domain default).
  """
  if domain not in domains.DOMAINS:
    raise ValueError(f"config.domain={domain!r} is invalid: allowed {sorted(domains.DOMAINS)}")
  if mode not in MODES:
    raise ValueError(f"config.data.mode={mode!r} is invalid: allowed {list(MODES)}")
  if num_graphs < 20:
    raise ValueError(f"config.data.num_graphs={num_graphs} is invalid: allowed >= 20")
  if hops < 0:
    raise ValueError(f"config.data.hops={hops} is invalid: allowed >= 0 (0 = domain default)")
  generate = domains.DOMAINS[domain][0]
  samples = generate(mode, num_graphs, domain_rng(domain, mode, seed), hops)
  return featurise(domain, mode, samples, seed, feature_dim=feature_dim,
                   inverse_edges=inverse_edges)


def build_chain_test_sets(num_per_k: int, seed: int, max_hops: int, *, feature_dim: int = 64,
                          inverse_edges: bool = True) -> dict:
  """Length-generalisation sets of the chains domain: {k: Dataset of num_per_k graphs at depth k}.

  Drawn from a generator stream disjoint from the training data's (key "chains/test/k").
  """
  out = {}
  for k in range(1, max_hops + 1):
    rng = np.random.default_rng([seed, zlib.crc32(f"chains/test/{k}".encode())])
    out[k] = featurise("chains", "v2", domains.chains_at_depth(num_per_k, rng, k, k), seed,
                       feature_dim=feature_dim, inverse_edges=inverse_edges)
  return out


def featurise(domain: str, mode: str, samples, seed: int, *, feature_dim: int,
              inverse_edges: bool) -> graphs_lib.Dataset:
  """Samples -> Dataset with the domain's relation and kind vocabularies."""
  _, predicates, kinds = domains.DOMAINS[domain]
  relation_index = {p: i for i, p in enumerate(predicates)}
  kind_index = {k: i for i, k in enumerate(kinds)}
  feature_mode = "random" if mode == "legacy" else "structural"
  gs = [graphs_lib.sample_to_graph(s, relation_index, kind_index, feature_mode=feature_mode,
                                   feature_dim=feature_dim, seed=seed, inverse_edges=inverse_edges)
        for s in samples]
  names = tuple(predicates) + (tuple(f"inv_{p}" for p in predicates) if inverse_edges else ())
  return graphs_lib.Dataset(graphs=gs, labels=np.array([s.label for s in samples], np.int32),
                            num_relations=len(names), relation_names=names)


def split_indices(n: int, fractions, seed: int) -> dict:
  """Seeded random split into train/val/test index arrays."""
  fr = np.asarray(fractions, np.float64)
  if fr.shape != (3,) or np.any(fr <= 0) or abs(fr.sum() - 1.0) > 1e-6:
    raise ValueError(f"config.data.split={tuple(fractions)} is invalid: allowed 3 positive fractions summing to 1")
  perm = np.random.default_rng([seed, 7]).permutation(n)
  n_train, n_val = int(round(fr[0] * n)), int(round(fr[1] * n))
  return {"train": perm[:n_train], "val": perm[n_train:n_train + n_val], "test": perm[n_train + n_val:]}


@dataclasses.dataclass
class Batches:
  """Padded batches of one dataset under one static budget."""
  dataset: graphs_lib.Dataset
  splits: dict
  batch_size: int
  seed: int

  extra_graphs: tuple = ()  # graphs evaluated later with this budget (e.g. chain test sets)

  def __post_init__(self):
    self.budget = graphs_lib.padding_budget(list(self.dataset.graphs) + list(self.extra_graphs),
                                            self.batch_size)
    self.steps_per_epoch = max(1, len(self.splits["train"]) // self.batch_size)
    self._eval_cache: dict = {}

  def _batch(self, idx) -> jraph.GraphsTuple:
    return graphs_lib.batch_graphs([self.dataset.graphs[i] for i in idx], self.budget,
                                   self.dataset.num_relations)

  def train_batch(self, step: int) -> jraph.GraphsTuple:
    """Deterministic function of the step: epoch-wise seeded shuffles, drop the last partial batch."""
    epoch, k = divmod(step, self.steps_per_epoch)
    perm = np.random.default_rng([self.seed, 11, epoch]).permutation(self.splits["train"])
    return self._batch(perm[k * self.batch_size:(k + 1) * self.batch_size])

  def graphs_batches(self, graphs) -> list:
    """Arbitrary graphs (within the budget) in batches of batch_size."""
    return [graphs_lib.batch_graphs(graphs[i:i + self.batch_size], self.budget,
                                    self.dataset.num_relations)
            for i in range(0, len(graphs), self.batch_size)]

  def eval_batches(self, split: str) -> list:
    """All graphs of a split in order (last batch padded with empty graphs)."""
    if split not in self._eval_cache:
      idx = self.splits[split]
      self._eval_cache[split] = [self._batch(idx[i:i + self.batch_size])
                                 for i in range(0, len(idx), self.batch_size)]
    return self._eval_cache[split]


def graph_stats(dataset: graphs_lib.Dataset, idx) -> dict:
  """Per-graph host statistics used by the trivial baselines."""
  n_node = np.array([int(dataset.graphs[i].n_node[0]) for i in idx], np.float64)
  n_edge = np.array([int(dataset.graphs[i].n_edge[0]) for i in idx], np.float64)
  counts = np.zeros((len(idx), dataset.num_relations), np.float64)
  for row, i in enumerate(idx):
    np.add.at(counts[row], dataset.graphs[i].edges["type"], 1.0)
  return {"n_node": n_node, "n_edge": n_edge, "edge_type_counts": counts,
          "labels": dataset.labels[np.asarray(idx)]}
