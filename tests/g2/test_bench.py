"""The benchmark's reference rows compute what they claim (the trained notebook's pattern)."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from g2 import g2form, torch_reference  # noqa: E402  (after the torch skip)


def _model(phi_scale: float):
  torch.manual_seed(0)
  phi0 = np.asarray(g2form.phi0(np.float32))
  m = torch_reference.ModularPhiNetwork(hidden=(16, 16), n_fourier=4, phi_offset=phi0)
  with torch.no_grad():
    m.mlp[-1].weight.mul_(phi_scale)
    m.mlp[-1].bias.zero_()
  return m


def test_notebook_pattern_is_35_grads_plus_mean_phi_squared():
  xs = torch.rand(8, 7) * 2 * torch.pi
  # Constant phi = phi0: no derivative term, co-closure = mean over the [7,7,7] tensor of
  # phi0^2 = 42 / 343 (phi_ijk phi_ijk = 6 |phi0|^2 = 42).
  assert torch_reference.torsion_loss_notebook(_model(0.0), xs.clone()).item() == \
      pytest.approx(42 / 343, rel=1e-6)
  m = _model(1.0)
  loss = torch_reference.torsion_loss_notebook(m, xs.clone()).item()
  x = xs.clone().requires_grad_(True)
  jac = torch.autograd.functional.jacobian(lambda y: m(y).sum(0), x).permute(1, 0, 2)  # [B,35,7]
  triples = torch_reference._TRIPLES  # pylint: disable=protected-access
  closure = sum(float((jac[:, c, l] ** 2).sum()) for c, t in enumerate(triples)
                for l in range(7) if l not in t) / (8 * 7 ** 4)
  phi_t = torch_reference.phi_to_tensor(m(xs))
  assert loss == pytest.approx(closure + float(torch.mean(phi_t ** 2)), rel=1e-5)
  assert torch_reference.check_derivatives(m, xs[:4]) < 1e-4
