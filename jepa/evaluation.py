"""Frozen-feature evaluation: k-NN, linear probe, effective rank and collapse statistics."""
from __future__ import annotations

import numpy as np
import scipy.optimize
import scipy.stats


def knn_accuracy(train_x, train_y, test_x, test_y, *, k: int = 20, temperature: float = 0.07,
                 num_classes: int | None = None, chunk: int = 1000) -> float:
  """DINO-style weighted k-NN: cosine similarity, top-k, votes weighted by exp(s / T)."""
  num_classes = num_classes or int(max(train_y.max(), test_y.max())) + 1
  k = min(k, len(train_x))
  norm = lambda x: x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
  tr, te = norm(np.asarray(train_x, np.float32)), norm(np.asarray(test_x, np.float32))
  correct = 0
  for s in range(0, len(te), chunk):
    sim = te[s:s + chunk] @ tr.T  # [q, n]
    nn_idx = np.argpartition(-sim, k - 1, axis=1)[:, :k]
    nn_sim = np.take_along_axis(sim, nn_idx, axis=1)
    weights = np.exp(nn_sim / temperature)
    votes = np.zeros((len(nn_idx), num_classes))
    np.add.at(votes, (np.arange(len(nn_idx))[:, None], train_y[nn_idx]), weights)
    correct += int((votes.argmax(1) == test_y[s:s + chunk]).sum())
  return correct / len(te)


def linear_probe_accuracy(train_x, train_y, test_x, test_y, **kwargs) -> float:
  """Test accuracy of `linear_probe_predictions` (same arguments)."""
  return float((linear_probe_predictions(train_x, train_y, test_x, test_y, **kwargs) == np.asarray(test_y)).mean())


def linear_probe_predictions(train_x, train_y, test_x, test_y, *, l2: float = 1e-3, iterations: int = 300,
                             num_classes: int | None = None) -> np.ndarray:
  """Test-set class predictions of a linear probe: multinomial logistic regression on standardised
  features, full-batch L-BFGS, fixed budget.

  Loss = mean cross-entropy + l2/2 * ||W||^2 (bias unpenalised). Deterministic (zero init).
  """
  num_classes = num_classes or int(max(train_y.max(), test_y.max())) + 1
  train_x, test_x = np.asarray(train_x, np.float64), np.asarray(test_x, np.float64)
  mu, sd = train_x.mean(0), train_x.std(0) + 1e-6
  xtr, xte = (train_x - mu) / sd, (test_x - mu) / sd
  n, d = xtr.shape
  onehot = np.eye(num_classes)[train_y]

  def loss_grad(theta):
    w, b = theta[:d * num_classes].reshape(d, num_classes), theta[d * num_classes:]
    logits = xtr @ w + b
    logits -= logits.max(1, keepdims=True)
    logp = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    p = np.exp(logp)
    loss = -(onehot * logp).sum() / n + 0.5 * l2 * (w * w).sum()
    g = (p - onehot) / n
    return loss, np.concatenate([(xtr.T @ g + l2 * w).ravel(), g.sum(0)])

  theta0 = np.zeros(d * num_classes + num_classes)
  res = scipy.optimize.minimize(loss_grad, theta0, jac=True, method="L-BFGS-B",
                                options={"maxiter": iterations})
  w, b = res.x[:d * num_classes].reshape(d, num_classes), res.x[d * num_classes:]
  return (xte @ w + b).argmax(1)


def paired_comparison(correct_a, correct_b) -> dict:
  """Two classifiers scored on the same test examples (boolean arrays of per-example correctness).

  Returns the accuracy difference a - b, its 95 % interval from the per-example paired differences
  (normal approximation), the discordant counts (a right and b wrong, and the reverse) and the exact
  two-sided McNemar p-value (binomial test of the discordant pairs at 1/2).
  """
  a, b = np.asarray(correct_a, bool), np.asarray(correct_b, bool)
  if a.shape != b.shape or a.ndim != 1 or not len(a):
    raise ValueError(f"paired_comparison needs two equal-length 1-D arrays, got {a.shape} and {b.shape}")
  d = a.astype(np.float64) - b.astype(np.float64)
  only_a, only_b = int((a & ~b).sum()), int((b & ~a).sum())
  p = scipy.stats.binomtest(only_a, only_a + only_b, 0.5).pvalue if only_a + only_b else 1.0
  return {"difference": float(d.mean()), "ci95": float(1.96 * d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1
          else float("nan"), "only_a_correct": only_a, "only_b_correct": only_b, "mcnemar_p": float(p),
          "n": int(len(d))}


def effective_rank(x, *, centred: bool = True) -> float:
  """RankMe: exp of the entropy of the normalised singular values of x [n, d] (Garrido et al. 2023)."""
  x = np.asarray(x, np.float64)
  if centred:
    x = x - x.mean(0)
  s = np.linalg.svd(x, compute_uv=False)
  if s.sum() <= 0:
    return 0.0
  p = s / s.sum()
  p = p[p > 0]
  return float(np.exp(-(p * np.log(p)).sum()))


def collapse_stats(x, prefix: str) -> dict[str, float]:
  """Per-dimension std (averaged), mean L2 norm and effective ranks of embeddings x [n, d]."""
  x = np.asarray(x, np.float64)
  return {
      f"{prefix}/std": float(x.std(0).mean()),
      f"{prefix}/l2_norm": float(np.linalg.norm(x, axis=1).mean()),
      f"{prefix}/effective_rank": effective_rank(x, centred=True),
      f"{prefix}/effective_rank_uncentred": effective_rank(x, centred=False),
  }


def subset_indices(num: int, size: int, seed: int) -> np.ndarray:
  """A fixed random subset (sorted) of range(num); all of it when size is 0 or >= num."""
  if not size or size >= num:
    return np.arange(num)
  return np.sort(np.random.default_rng(seed).choice(num, size, replace=False))
