"""Trivial baselines every run reports on the same split: majority, size-only LR, bag of edge types.

(The fourth baseline, a flat R-GCN with the same readout and no hierarchy/cycle loss, is trained
by nsm.train as the separate, parameter-matched `nsm.model.FlatRGCN`.)
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax


def majority(train_labels: np.ndarray, test_labels: np.ndarray) -> float:
  """Accuracy of predicting the training split's most common class."""
  cls = np.bincount(train_labels).argmax()
  return float(np.mean(test_labels == cls))


def _standardise(train_x, *others):
  mu, sd = train_x.mean(0), train_x.std(0) + 1e-8
  return [(x - mu) / sd for x in (train_x,) + others]


def fit_mlp(x_train, y_train, x_val, y_val, *, hidden: int, num_classes: int, seed: int,
            steps: int = 400, lr: float = 1e-2, weight_decay: float = 1e-4):
  """Full-batch AdamW on standardised inputs; hidden=0 is logistic regression.

  Model selection: the parameters with the best validation accuracy seen every 20 steps.
  Returns predict(x) -> class ids.
  """
  key = jax.random.PRNGKey(seed)
  d = x_train.shape[1]
  k1, k2 = jax.random.split(key)
  if hidden:
    params = {"w1": jax.random.normal(k1, (d, hidden)) / np.sqrt(d), "b1": jnp.zeros(hidden),
              "w2": jax.random.normal(k2, (hidden, num_classes)) / np.sqrt(hidden),
              "b2": jnp.zeros(num_classes)}
  else:
    params = {"w2": jnp.zeros((d, num_classes)), "b2": jnp.zeros(num_classes)}

  def logits(p, x):
    if "w1" in p:
      x = jax.nn.relu(x @ p["w1"] + p["b1"])
    return x @ p["w2"] + p["b2"]

  tx = optax.adamw(lr, weight_decay=weight_decay)
  opt = tx.init(params)
  xt, yt = jnp.asarray(x_train, jnp.float32), jnp.asarray(y_train)

  @jax.jit
  def step(p, o):
    loss, g = jax.value_and_grad(
        lambda p: optax.softmax_cross_entropy_with_integer_labels(logits(p, xt), yt).mean())(p)
    u, o = tx.update(g, o, p)
    return optax.apply_updates(p, u), o, loss

  best, best_acc = params, -1.0
  xv = jnp.asarray(x_val, jnp.float32)
  for i in range(steps):
    params, opt, _ = step(params, opt)
    if i % 20 == 19:
      acc = float(np.mean(np.asarray(logits(params, xv).argmax(-1)) == y_val))
      if acc > best_acc:
        best, best_acc = params, acc
  return best, logits


def _fit_predict(x, y, splits, *, hidden, num_classes, seed):
  tr, va, te = splits["train"], splits["val"], splits["test"]
  xs_tr, xs_va, xs_te = _standardise(x[tr], x[va], x[te])
  params, logits = fit_mlp(xs_tr, y[tr], xs_va, y[va], hidden=hidden, num_classes=num_classes,
                           seed=seed)
  pred = np.asarray(logits(params, jnp.asarray(xs_te, jnp.float32)).argmax(-1))
  return float(np.mean(pred == y[te]))


def trivial_baselines(stats: dict, splits: dict, *, num_classes: int, seed: int) -> dict:
  """Test accuracies of majority, size-only logistic regression and a bag-of-edge-types MLP.

  stats: from nsm.data.graph_stats over ALL graphs (indexed like the dataset).
  """
  y = stats["labels"]
  size_x = np.stack([stats["n_node"], stats["n_edge"]], axis=1)
  types_x = np.log1p(stats["edge_type_counts"])
  return {
      "majority": majority(y[splits["train"]], y[splits["test"]]),
      "size_only": _fit_predict(size_x, y, splits, hidden=0, num_classes=num_classes, seed=seed),
      "edge_types": _fit_predict(types_x, y, splits, hidden=64, num_classes=num_classes, seed=seed),
  }
