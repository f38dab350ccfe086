"""PyTorch reference of the original NSM layer stack, written from its description (nsm_growth.md §1.1).

Used only by `python -m nsm.bench` (the `[bench]` extra). Same widths as the JAX model so both do
the same arithmetic: per level an R-GCN stack (basis decomposition, the original's global mean
with self-loop and confidence weights), an affine-coupling stack, PyG-style per-graph top-k
pooling that *compacts* the kept nodes and filters edges (as PyG SAGPooling/TopKPooling), then
mean||max readout and an MLP head; the cycle loss runs the inverse couplings.
"""
from __future__ import annotations

import math

import torch
from torch import nn


class RGCN(nn.Module):
  def __init__(self, dim, num_relations, num_bases):
    super().__init__()
    self.r = num_relations
    b = min(num_bases, num_relations)
    self.basis = nn.Parameter(torch.empty(b, dim, dim))
    self.comp = nn.Parameter(torch.empty(num_relations + 1, b))
    nn.init.xavier_uniform_(self.basis)
    nn.init.xavier_uniform_(self.comp)
    self.root = nn.Linear(dim, dim)

  def forward(self, x, src, dst, etype, conf):
    xv = torch.einsum("nf,bfo->nbo", x, self.basis)
    msg = torch.einsum("eb,ebo->eo", self.comp[etype], xv[src]) * conf[:, None]
    agg = torch.zeros_like(x[:, :xv.shape[-1]]).index_add_(0, dst, msg)
    agg = agg + torch.einsum("b,nbo->no", self.comp[self.r], xv)
    deg = torch.ones(x.shape[0], device=x.device).index_add_(0, dst, torch.ones_like(conf))
    return agg / deg[:, None] + self.root(x)


class Coupling(nn.Module):
  def __init__(self, dim, split, hidden):
    super().__init__()
    self.split, self.w = split, dim - split
    self.net = nn.Sequential(nn.Linear(split, hidden), nn.ReLU(), nn.Linear(hidden, hidden),
                             nn.ReLU(), nn.Linear(hidden, 2 * self.w))
    nn.init.zeros_(self.net[-1].weight)
    nn.init.zeros_(self.net[-1].bias)

  def forward(self, x, inverse=False):
    xa, xb = x[:, :self.split], x[:, self.split:]
    st = self.net(xa)
    s, t = torch.tanh(st[:, :self.w]), st[:, self.w:]
    yb = (xb - t) * torch.exp(-s) if inverse else xb * torch.exp(s) + t
    return torch.cat([xa, yb], dim=-1)


class CouplingStack(nn.Module):
  def __init__(self, dim, layers, hidden):
    super().__init__()
    self.layers = nn.ModuleList([Coupling(dim, (dim // 2, dim // 3)[i % 2], hidden) for i in range(layers)])

  def forward(self, x):
    for layer in self.layers:
      x = layer(x).flip(-1)
    return x

  def inverse(self, y):
    for layer in reversed(self.layers):
      y = layer(y.flip(-1), inverse=True)
    return y


def topk(score, ratio, batch, num_graphs):
  """PyG `topk`: per-graph descending sort on a dense [G, max_n] matrix; keeps ceil(ratio n_i)."""
  n_i = torch.bincount(batch, minlength=num_graphs)
  k = torch.ceil(ratio * n_i.to(score.dtype)).long()
  max_n = int(n_i.max())
  start = torch.cumsum(n_i, 0) - n_i
  idx = torch.arange(batch.shape[0]) - start[batch] + batch * max_n
  dense = torch.full((num_graphs * max_n,), -math.inf).index_put((idx,), score).view(num_graphs, max_n)
  _, perm = dense.sort(dim=-1, descending=True)
  perm = perm + (torch.arange(num_graphs) * max_n)[:, None]
  mask = torch.arange(max_n)[None, :] < k[:, None]
  perm = perm[mask]
  node_of_dense = torch.full((num_graphs * max_n,), -1, dtype=torch.long).index_put(
      (idx,), torch.arange(batch.shape[0]))
  return node_of_dense[perm]


class TorchNSM(nn.Module):
  def __init__(self, in_dim, dim, num_relations, num_bases=8, rgcn_layers=2, coupling_layers=3,
               coupling_hidden=64, ratio=0.5, num_classes=2):
    super().__init__()
    self.ratio = ratio
    mk = lambda i: nn.ModuleList([RGCN(in_dim if (i == 0 and j == 0) else dim, num_relations, num_bases)  # noqa: E731
                                  for j in range(rgcn_layers)])
    self.rgcn = nn.ModuleList([mk(0), mk(1)])
    self.norms = nn.ModuleList([nn.ModuleList([nn.LayerNorm(dim) for _ in range(rgcn_layers)]) for _ in range(2)])
    self.couple = nn.ModuleList([CouplingStack(dim, coupling_layers, coupling_hidden) for _ in range(2)])
    self.score = nn.ModuleList([nn.Linear(dim, 1) for _ in range(2)])
    self.drop = nn.Dropout(0.1)
    self.head = nn.Sequential(nn.Linear(2 * dim + 2, dim), nn.ReLU(), nn.Dropout(0.1), nn.Linear(dim, num_classes))

  def forward(self, x, src, dst, etype, conf, batch, num_graphs, size):
    cycle = 0.0
    for level in range(2):
      for layer, norm in zip(self.rgcn[level], self.norms[level]):
        x = self.drop(torch.relu(norm(layer(x, src, dst, etype, conf))))
      h = x
      z = self.couple[level](h)
      s = self.score[level](z)[:, 0]
      perm = topk(s, self.ratio, batch, num_graphs)
      unpooled = torch.zeros_like(z).index_copy_(0, perm, z[perm])
      rec = self.couple[level].inverse(unpooled)
      cycle = cycle + (0.7, 0.3)[level] * ((rec - h) ** 2).mean() / h.var().detach()
      x = z[perm] * torch.tanh(s[perm])[:, None]
      keep = torch.zeros(h.shape[0], dtype=torch.bool).index_fill_(0, perm, True)
      new_id = torch.full((h.shape[0],), -1, dtype=torch.long).index_put((perm,), torch.arange(perm.shape[0]))
      e = keep[src] & keep[dst]
      src, dst, etype, conf = new_id[src[e]], new_id[dst[e]], etype[e], conf[e]
      batch = batch[perm]
    cnt = torch.bincount(batch, minlength=num_graphs).clamp(min=1)[:, None].to(x.dtype)
    mean = torch.zeros(num_graphs, x.shape[1]).index_add_(0, batch, x) / cnt
    mx = torch.full((num_graphs, x.shape[1]), -math.inf).scatter_reduce(
        0, batch[:, None].expand_as(x), x, reduce="amax")
    return self.head(torch.cat([mean, mx, size], dim=-1)), cycle
