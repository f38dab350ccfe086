"""Auxiliary heads of the original's Step 2: a Koopman layer and a physics-informed energy loss.

Both act on the final hidden states h: [B, N, D] and return a scalar loss added to the LM loss
(weights in config.loss); neither feeds the logits, so both keep the model causal.
* Koopman (reference bk.md §1.5): lift phi: D -> K (Linear-tanh-Linear), a learnable linear
  operator A (init I + 0.01 N(0, 1)), decoder psi: K -> D. Loss = smooth-L1(A phi(h_t),
  phi(h_{t+1})) (one-step linear evolution in the lifted space) + smooth-L1(psi(phi(h_t)), h_t)
  (reconstruction, which rules out the trivial phi = 0). The original also mixed in a streaming
  DMD estimate of A; here A is learned by gradient descent only.
* Physics-informed: kinetic T_t = MLP_T(h_t - h_{t-1}) and potential V_t = MLP_V(h_t) (scalar
  MLPs, as the original's kinetic/potential networks); loss = mean_t (E_t - E_{t-1})^2 with
  E = T + V (energy conservation along the sequence). The original's learnable Lagrange
  multiplier is replaced by the fixed weight config.loss.physics_weight: a multiplier learned by
  descent on the same loss would simply go to -inf.
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp


def smooth_l1(x: jax.Array, beta: float = 1.0) -> jax.Array:
  ax = jnp.abs(x)
  return jnp.mean(jnp.where(ax < beta, 0.5 * ax * ax / beta, ax - 0.5 * beta))


class KoopmanHead(nn.Module):
  """h: [B, N, D] -> scalar Koopman loss."""
  koopman_dim: int

  @nn.compact
  def __call__(self, h: jax.Array) -> jax.Array:
    k, d = self.koopman_dim, h.shape[-1]
    h = h.astype(jnp.float32)
    phi = nn.Dense(k, name="lift_out")(jnp.tanh(nn.Dense(k, name="lift_in")(h)))
    a = self.param("operator", lambda key, s: jnp.eye(s[0]) + 0.01 * jax.random.normal(key, s),
                   (k, k))
    pred = phi[:, :-1] @ a.T
    recon = nn.Dense(d, name="decode")(phi)
    return smooth_l1(pred - phi[:, 1:]) + smooth_l1(recon - h)


class EnergyHead(nn.Module):
  """h: [B, N, D] -> scalar energy-conservation loss."""
  hidden: int

  @nn.compact
  def __call__(self, h: jax.Array) -> jax.Array:
    h = h.astype(jnp.float32)
    mlp = lambda name: nn.Sequential([nn.Dense(self.hidden), nn.tanh, nn.Dense(1)], name=name)
    kinetic = mlp("kinetic")(h[:, 1:] - h[:, :-1])[..., 0]  # [B, N-1]
    potential = mlp("potential")(h[:, 1:])[..., 0]
    energy = kinetic + potential
    return jnp.mean(jnp.square(energy[:, 1:] - energy[:, :-1]))
