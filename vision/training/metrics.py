"""Classification metrics from labels and predictions (scikit-learn does the arithmetic)."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, classes: list[str]) -> dict[str, object]:
    labels = list(range(len(classes)))
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0)
    return {
        "accuracy": _r(accuracy_score(y_true, y_pred)),
        "macro_f1": _r(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
        "images": len(y_true),
        "per_class": {
            name: {"precision": _r(precision[i]), "recall": _r(recall[i]), "f1": _r(f1[i]),
                   "support": int(support[i])}
            for i, name in enumerate(classes)
        },
    }


def _r(value: float) -> float:
    """Six decimals: enough for any decision, few enough that reruns diff cleanly."""
    return round(float(value), 6)
