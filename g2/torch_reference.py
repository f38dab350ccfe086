"""PyTorch reimplementation of the original K7 v1.0 torsion pattern, for `python -m g2.bench` only.

Written from the description in reference g2.md §1.1 and §1.3 (the original notebook is not
vendored). It reproduces the original's *computational pattern and its formulas*, including the
bugs, because the benchmark measures what that code cost:

* φ network: FourierFeatures(7, 32) with B ~ N(0, 1) fixed, [sin 2πxB, cos 2πxB] -> 64 ->
  Linear+SiLU 384, 384, 256 -> Linear 35; 35 outputs scattered into an antisymmetric [7,7,7].
* "dφ": 35 `torch.autograd.grad(phi_c.sum(), x, create_graph=True)` calls; dphi[i,j,k,l] =
  ∂_l φ_ijk for l ∉ {i,j,k} (no alternating sum).
* metric: g_ij = (1/6) Σ φ_ipq φ_jpq + 1e-4 I (the contraction formula).
* Hodge star: Python loop over all 5040 permutations; index raising 'bij,bjk,bkl,blmn->bimn';
  factor 1/(6 sqrt det g).
* loss: mean(dphi²) + ||⋆φ||² / 2401 (the standalone "coclosure" of tcs_operators.py).

Two patterns are timed by the benchmark:
* `train_step_notebook`: what the *trained* notebook ran (reference §1.3): the 35-grad "dφ",
  closure = mean(dφ²), co-closure = mean(φ²) ("Hodge star too unstable"), no metric, no star.
  This is the reference row.
* `train_step_original`: the standalone operators (contraction metric + 5040-permutation ⋆
  loop), which the published notebook never executed: a second, labelled row.

torch is imported only here; nothing else in g2 depends on it.
"""
from __future__ import annotations

import itertools

import torch
from torch import nn

_TRIPLES = list(itertools.combinations(range(7), 3))


def _perm_sign(p) -> int:
  p, sign = list(p), 1
  for i in range(len(p)):
    while p[i] != i:
      j = p[i]
      p[i], p[j] = p[j], p[i]
      sign = -sign
  return sign


_PERMS = [(p, _perm_sign(p)) for p in itertools.permutations(range(7))]


class FourierFeatures(nn.Module):
  """[sin(2π x B), cos(2π x B)] with a fixed random B ~ N(0, 1) of shape [7, n]."""

  def __init__(self, in_dim: int = 7, n: int = 32):
    super().__init__()
    self.register_buffer("b", torch.randn(in_dim, n))

  def forward(self, x):
    proj = 2 * torch.pi * x @ self.b
    return torch.cat([torch.sin(proj), torch.cos(proj)], dim=-1)


class ModularPhiNetwork(nn.Module):
  """The original φ network: Fourier(32) -> 64 -> 384 -> 384 -> 256 -> 35 (SiLU)."""

  def __init__(self, hidden=(384, 384, 256), n_fourier: int = 32, phi_offset=None):
    super().__init__()
    layers, width = [], 2 * n_fourier
    for h in hidden:
      layers += [nn.Linear(width, h), nn.SiLU()]
      width = h
    self.fourier = FourierFeatures(7, n_fourier)
    self.mlp = nn.Sequential(*layers, nn.Linear(width, 35))
    self.register_buffer("phi_offset", torch.zeros(35) if phi_offset is None
                         else torch.tensor(list(phi_offset), dtype=torch.float32))

  def forward(self, x):
    return self.phi_offset + self.mlp(self.fourier(x))


def phi_to_tensor(phi35):
  """[B, 35] -> antisymmetric [B, 7, 7, 7] by per-component assignment (the original's loop)."""
  t = phi35.new_zeros(phi35.shape[0], 7, 7, 7)
  for c, (i, j, k) in enumerate(_TRIPLES):
    v = phi35[:, c]
    t[:, i, j, k], t[:, j, k, i], t[:, k, i, j] = v, v, v
    t[:, j, i, k], t[:, i, k, j], t[:, k, j, i] = -v, -v, -v
  return t


def exterior_derivative_original(phi35, coords):
  """The original's "dφ": 35 autograd.grad calls, dphi[b,i,j,k,l] = ∂_l φ_ijk (l ∉ ijk)."""
  dphi = phi35.new_zeros(phi35.shape[0], 7, 7, 7, 7)
  for c, (i, j, k) in enumerate(_TRIPLES):
    grad = torch.autograd.grad(phi35[:, c].sum(), coords, create_graph=True)[0]
    for l in range(7):
      if l not in (i, j, k):
        dphi[:, i, j, k, l] = grad[:, l]
  return dphi


def metric_original(phi_t):
  """g_ij = (1/6) Σ_pq φ_ipq φ_jpq, symmetrised, + 1e-4 I."""
  g = torch.einsum("bipq,bjpq->bij", phi_t, phi_t) / 6.0
  g = 0.5 * (g + g.transpose(1, 2))
  return g + 1e-4 * torch.eye(7, dtype=g.dtype)


def hodge_star_3_original(phi_t, g):
  """The original's ⋆φ: 5040-permutation loop, raising only one index, 1/(6 sqrt det g)."""
  g_inv = torch.linalg.inv(g)
  sqrt_det = torch.sqrt(torch.abs(torch.linalg.det(g)))
  phi_up = torch.einsum("bij,bjk,bkl,blmn->bimn", g_inv, g_inv, g_inv, phi_t)
  star = phi_t.new_zeros(phi_t.shape[0], 7, 7, 7, 7)
  for (i, j, k, l, m, n, o), sign in _PERMS:
    star[:, l, m, n, o] += sign * phi_up[:, i, j, k]
  return star / (6.0 * sqrt_det)[:, None, None, None, None]


def torsion_loss_original(model, coords):
  """closure = mean(dphi²) and coclosure = ||⋆φ||²/2401, the original's torsion loss."""
  coords = coords.requires_grad_(True)
  phi35 = model(coords)
  dphi = exterior_derivative_original(phi35, coords)
  phi_t = phi_to_tensor(phi35)
  star = hodge_star_3_original(phi_t, metric_original(phi_t))
  closure = torch.mean(dphi**2)
  coclosure = torch.mean(torch.sum(star**2, dim=(1, 2, 3, 4))) / 2401.0
  return closure + coclosure


def torsion_loss_notebook(model, coords):
  """The trained notebook's torsion loss: mean(dphi²) (35 grads) + mean(φ²) (φ as [7,7,7])."""
  coords = coords.requires_grad_(True)
  phi35 = model(coords)
  dphi = exterior_derivative_original(phi35, coords)
  phi_t = phi_to_tensor(phi35)
  return torch.mean(dphi ** 2) + torch.mean(phi_t ** 2)


def train_step_notebook(model, coords) -> float:
  """Forward + backward of the notebook's loss (gradients accumulate into the parameters)."""
  model.zero_grad(set_to_none=True)
  loss = torsion_loss_notebook(model, coords)
  loss.backward()
  return float(loss.detach())


def check_derivatives(model, coords, h: float = 1e-3) -> float:
  """Max relative error of the 35-grad partial derivatives against central differences in
  float64 (a copy of the model): the reference computes real derivatives at the timed size."""
  import copy  # pylint: disable=g-import-not-at-top
  m64 = copy.deepcopy(model).double()
  x = coords.detach().double().clone().requires_grad_(True)
  phi = m64(x)
  grads = torch.stack([torch.autograd.grad(phi[:, c].sum(), x, retain_graph=True)[0]
                       for c in range(35)], 1)  # [B, 35, 7]
  with torch.no_grad():
    fd = torch.stack([(m64(x + h * e) - m64(x - h * e)) / (2 * h)
                      for e in torch.eye(7, dtype=torch.float64)], -1)
  return float((grads - fd).abs().max() / fd.abs().max())


def train_step_original(model, coords) -> float:
  """Forward + backward of the torsion loss (gradients accumulate into model parameters)."""
  model.zero_grad(set_to_none=True)
  loss = torsion_loss_original(model, coords)
  loss.backward()
  return float(loss.detach())
