"""Classification metrics and figures: accuracy, balanced accuracy, confusion matrix, report."""
from __future__ import annotations

import json
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def classification_metrics(y_true, y_pred, num_classes: int) -> dict:
  """Accuracy, per-class accuracy (recall), balanced accuracy, confusion matrix, P/R/F1 report."""
  y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
  cm = np.zeros((num_classes, num_classes), np.int64)
  np.add.at(cm, (y_true, y_pred), 1)
  support = cm.sum(1)
  predicted = cm.sum(0)
  tp = np.diag(cm).astype(np.float64)
  recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
  precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
  f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros_like(tp),
                 where=(precision + recall) > 0)
  present = support > 0
  report = {str(c): {"precision": float(precision[c]), "recall": float(recall[c]),
                     "f1": float(f1[c]), "support": int(support[c])} for c in range(num_classes)}
  report["macro_avg"] = {"precision": float(precision[present].mean()),
                         "recall": float(recall[present].mean()), "f1": float(f1[present].mean()),
                         "support": int(support.sum())}
  return {
      "test_accuracy": float(tp.sum() / max(cm.sum(), 1)),
      "balanced_accuracy": float(recall[present].mean()),
      "per_class_accuracy": [float(r) for r in recall],
      "class_gap": float(np.ptp(recall[present])) if present.any() else 0.0,
      "confusion_matrix": cm.tolist(),
      "classification_report": report,
  }


def plot_confusion(cm, path: str, title: str) -> None:
  cm = np.asarray(cm)
  fig, ax = plt.subplots(figsize=(3.6, 3.2))
  ax.imshow(cm, cmap="Blues")
  for (i, j), v in np.ndenumerate(cm):
    ax.text(j, i, str(v), ha="center", va="center",
            color="white" if v > cm.max() / 2 else "black")
  ax.set_xlabel("predicted")
  ax.set_ylabel("true")
  ax.set_xticks(range(cm.shape[1]))
  ax.set_yticks(range(cm.shape[0]))
  ax.set_title(title, fontsize=9)
  fig.tight_layout()
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  fig.savefig(path, dpi=100)
  plt.close(fig)


def write_json(obj, path: str) -> None:
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with open(path + ".tmp", "w") as f:
    json.dump(obj, f, indent=2)
  os.replace(path + ".tmp", path)
