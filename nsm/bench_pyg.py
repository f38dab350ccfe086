"""PyTorch Geometric reference of the flat R-GCN (RGCNConv / FastRGCNConv), for `nsm.bench`.

Same architecture and sizes as `nsm.model.FlatRGCN` with pyg_mean aggregation: `depth` x
(RGCNConv(basis decomposition, aggr="mean", root weight, bias) -> LayerNorm -> ReLU -> dropout),
mean||max graph readout over the real nodes, [readout || size] -> Linear -> ReLU -> dropout ->
Linear. `load_jax_params` copies a FlatRGCN's parameters so that both produce the same logits
(checked by the benchmark before timing).
"""
from __future__ import annotations

import jraph
import numpy as np
import torch
from torch import nn
from torch_geometric.nn import FastRGCNConv, RGCNConv, global_max_pool, global_mean_pool

CONVS = {"RGCNConv": RGCNConv, "FastRGCNConv": FastRGCNConv}


class PygFlatRGCN(nn.Module):
  def __init__(self, conv, in_dim, hidden, num_relations, num_bases, depth, num_classes=2,
               dropout=0.1):
    super().__init__()
    b = min(num_bases, num_relations)
    dims = [in_dim] + [hidden] * depth
    self.convs = nn.ModuleList([CONVS[conv](dims[i], hidden, num_relations, num_bases=b, aggr="mean")
                                for i in range(depth)])
    self.norms = nn.ModuleList([nn.LayerNorm(hidden, eps=1e-6) for _ in range(depth)])
    self.drop = nn.Dropout(dropout)
    self.head = nn.Sequential(nn.Linear(2 * hidden + 2, hidden), nn.ReLU(), nn.Dropout(dropout),
                              nn.Linear(hidden, num_classes))

  def forward(self, x, edge_index, edge_type, batch, num_graphs, size):
    for conv, norm in zip(self.convs, self.norms):
      x = self.drop(torch.relu(norm(conv(x, edge_index, edge_type))))
    z = torch.cat([global_mean_pool(x, batch, num_graphs), global_max_pool(x, batch, num_graphs),
                   size], dim=-1)
    return self.head(z)


def load_jax_params(net: PygFlatRGCN, params) -> None:
  """Copies FlatRGCN parameters (flax names) into the PyG module."""
  p = params["params"]
  t = lambda a: torch.as_tensor(np.asarray(a, np.float32))  # noqa: E731
  with torch.no_grad():
    for i, (conv, norm) in enumerate(zip(net.convs, net.norms)):
      layer = p["rgcn"][f"RGCNLayer_{i}"]
      conv.weight.copy_(t(layer["basis"]))
      conv.comp.copy_(t(layer["comp"]))
      conv.root.copy_(t(layer["root"]["kernel"]))
      conv.bias.copy_(t(layer["root"]["bias"]))
      ln = p["rgcn"][f"LayerNorm_{i}"]
      norm.weight.copy_(t(ln["scale"]))
      norm.bias.copy_(t(ln["bias"]))
    for j, name in ((0, "Dense_0"), (3, "Dense_1")):
      net.head[j].weight.copy_(t(p["head"][name]["kernel"]).T)
      net.head[j].bias.copy_(t(p["head"][name]["bias"]))


def to_pyg(g):
  """A padded jraph batch (numpy) -> PyG tensors over the real nodes/edges only."""
  n_graphs = int(np.asarray(jraph.get_graph_padding_mask(g)).sum())  # real graphs come first
  n_real = int(g.n_node[:n_graphs].sum())
  e_real = int(g.n_edge[:n_graphs].sum())
  batch = np.repeat(np.arange(n_graphs), g.n_node[:n_graphs])
  t = lambda a, dt=None: torch.as_tensor(np.asarray(a), dtype=dt)  # noqa: E731
  edge_index = torch.stack([t(g.senders[:e_real], torch.long), t(g.receivers[:e_real], torch.long)])
  return (t(g.nodes[:n_real], torch.float32), edge_index, t(g.edges["type"][:e_real], torch.long),
          t(batch, torch.long), n_graphs, t(g.globals["size"][:n_graphs], torch.float32),
          t(g.globals["label"][:n_graphs], torch.long))
