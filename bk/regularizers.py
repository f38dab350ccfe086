"""Auxiliary heads of the original's Step 2: a Koopman layer and a physics-informed energy loss.

Both act on the final hidden states h: [B, N, D] and return a scalar loss added to the LM loss
(weights in config.loss); neither feeds the logits, so both keep the model causal. Both losses
are *normalised* so that their trivial solutions are not minima (the original's were):
* Koopman (reference bk.md §1.5): lift phi: D -> K (Linear-tanh-Linear), a learnable linear
  operator A (init I + 0.01 N(0, 1)), decoder psi: K -> D. Loss = relative one-step error
  mean|A phi_t - phi_{t+1}|^2 / var(phi) + relative reconstruction error
  mean|psi(phi(h_t)) - h_t|^2 / var(h). Both terms are invariant to phi -> c phi (lift scaled
  down, decoder up), which made the unnormalised smooth-L1 form shrink without learning
  anything; a constant lift (phi carries no information) costs exactly 1 (the reconstruction
  can only be the mean), so the loss is below 1 only when the lift is informative *and* evolves
  linearly. The original also mixed in a streaming DMD estimate of A; here A is learned by
  gradient descent only.
* Physics-informed: kinetic T_t = |h_t - h_{t-1}|^2 / 2 (unit mass; fixed, not learned) and a
  learned potential V_t = MLP_V(h_t); loss = mean_t (E_t - E_{t-1})^2 / mean_t (T_t - T_{t-1})^2
  with E = T + V: the fraction of the kinetic energy's variation that the potential does *not*
  compensate. A constant potential costs exactly 1; 0 means exact conservation. The original
  learned T with an MLP too, so zero output weights (T = V = const) gave a zero loss whatever h
  did; its learnable Lagrange multiplier is replaced by the fixed config.loss.physics_weight
  (a multiplier learned by descent on the same loss would simply go to -inf).
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp


def _variance(x: jax.Array) -> jax.Array:
  """Mean squared deviation from the per-feature mean over batch and time: x: [B, N, K]."""
  return jnp.mean(jnp.square(x - jnp.mean(x, axis=(0, 1), keepdims=True)))


# Guards the normalisers of an exactly constant signal (0 / EPS = 0 when the numerator is 0).
EPS = 1e-12


class KoopmanHead(nn.Module):
  """h: [B, N, D] -> scalar Koopman loss (relative prediction + relative reconstruction error)."""
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
    pred_err = jnp.mean(jnp.square(pred - phi[:, 1:])) / (_variance(phi[:, 1:]) + EPS)
    recon_err = jnp.mean(jnp.square(recon - h)) / (_variance(h) + EPS)
    return pred_err + recon_err


class EnergyHead(nn.Module):
  """h: [B, N, D] -> scalar energy-conservation loss (unexplained fraction of dT)."""
  hidden: int

  @nn.compact
  def __call__(self, h: jax.Array) -> jax.Array:
    h = h.astype(jnp.float32)
    kinetic = 0.5 * jnp.sum(jnp.square(h[:, 1:] - h[:, :-1]), axis=-1)  # [B, N-1]
    hidden = jnp.tanh(nn.Dense(self.hidden, name="potential_hidden")(h[:, 1:]))
    potential = nn.Dense(1, name="potential_out")(hidden)[..., 0]
    d_energy = jnp.diff(kinetic + potential, axis=1)
    d_kinetic = jnp.diff(kinetic, axis=1)
    return jnp.mean(jnp.square(d_energy)) / (jnp.mean(jnp.square(d_kinetic)) + EPS)
