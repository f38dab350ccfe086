"""The original ResNet-BK BK-Core as the original ran it, in PyTorch (benchmark reference only).

Written from the formulas in reference bk.md section 1.1/1.3 (not copied): complex128,
theta forward and phi backward recursions as a Python loop with one tensor op per position over
the batch, G_ii = theta_i phi_i / (theta_N + 1e-18), non-finite -> 0, |G| clipped to 50, cast to
complex64; the backward pass is the hybrid analytic GRAD_BLEND gradient (Nov-14 form, alpha 0.5).
The post-processing (NaN -> 0, clips) is the original's and is kept here only for parity.
"""
from __future__ import annotations

import torch

GRAD_BLEND = 0.5


def theta_phi_diagonal(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor, z: complex = 1j, *,
                       dtype: torch.dtype = torch.complex128,
                       postprocess: bool = True) -> torch.Tensor:
  """a: [B, N], b, c: [B, N-1] real -> complex64 [B, N], the original's recursion.

  dtype=torch.complex64, postprocess=False gives the raw recursion in single precision
  (benchmark part B: it overflows near N = 120).
  """
  n = a.shape[-1]
  a_s = a.to(dtype) - z
  b = b.to(dtype)
  c = c.to(dtype)
  cb = c * b
  one = torch.ones_like(a_s[:, 0])
  theta = [one, a_s[:, 0]]
  for i in range(1, n):
    theta.append(a_s[:, i] * theta[i] - cb[:, i - 1] * theta[i - 1])
  phi = [None] * n
  phi[n - 1] = one
  if n > 1:
    phi[n - 2] = a_s[:, n - 1]
  for i in range(n - 3, -1, -1):
    phi[i] = a_s[:, i + 1] * phi[i + 1] - cb[:, i] * phi[i + 2]
  theta = torch.stack(theta, dim=-1)
  phi = torch.stack(phi, dim=-1)
  g = theta[:, :-1] * phi / (theta[:, -1:] + 1e-18)
  if not postprocess:
    return g.to(torch.complex64)
  g = torch.where(torch.isfinite(g), g, torch.zeros_like(g))
  mag = g.abs()
  g = torch.where(mag > 50.0, g / mag * 50.0, g)
  return g.to(torch.complex64)


class BKCoreFunction(torch.autograd.Function):
  """Forward: the theta/phi recursion; backward: the hybrid analytic gradient (Nov-14 form)."""

  @staticmethod
  def forward(ctx, he, b, c):
    g = theta_phi_diagonal(he, b, c, 1j)
    ctx.save_for_backward(g)
    return torch.stack([g.real, g.imag], dim=-1).to(torch.float32)

  @staticmethod
  def backward(ctx, grad_out):
    (g,) = ctx.saved_tensors
    g_hat = torch.complex(grad_out[..., 0], grad_out[..., 1]).to(torch.complex128)
    g2 = g.to(torch.complex128) ** 2
    theoretical = -(g_hat * g2).real
    mag = g2.abs()
    d = torch.where(mag < 1e-3, g2 / (mag + 1e-30) * 1e-3, g2)
    hypothesis = -(g_hat / (d + 1e-6)).real
    grad = (1 - GRAD_BLEND) * theoretical + GRAD_BLEND * hypothesis
    grad = torch.where(torch.isfinite(grad), grad, torch.zeros_like(grad)).clamp(-1000, 1000)
    return grad.to(torch.float32), None, None
