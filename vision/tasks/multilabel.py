"""Multi-label tagging: any number of tags per image (a fleet's `night`, `rain`, `tunnel`...), one sigmoid per
tag trained with binary cross-entropy.

Targets are multi-hot float rows (N x tags). Rare tags get a positive weight (`train.balance: loss`: negatives
over positives, as torch's BCEWithLogitsLoss `pos_weight` documents), a model is judged by the mean over tags of
each tag's average precision (`map`, threshold-free), and each tag gets its own decision threshold, the one
that maximises its F1 on the validation split (`choose_thresholds`), which the bundle ships to the server.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import average_precision_score, precision_recall_fscore_support
from torchmetrics import Metric
from torchmetrics.classification import MultilabelAveragePrecision, MultilabelF1Score

from vision.compression.scoring import Scoring
from vision.tasks.base import Selection, Task

DEFAULT_THRESHOLD = 0.5
"""A tag's threshold when validation cannot choose one (no positive image of it)."""


def sigmoid(logits: np.ndarray) -> np.ndarray:
    """Each tag's probability, computed stably for large logits of either sign."""
    z = np.asarray(logits, dtype=np.float64)
    return np.where(z >= 0, 1.0 / (1.0 + np.exp(-np.abs(z))), np.exp(-np.abs(z)) / (1.0 + np.exp(-np.abs(z))))


def _smoothed(targets: torch.Tensor, label_smoothing: float) -> torch.Tensor:
    """Targets pulled toward 0.5 by `label_smoothing` (the binary form of cross-entropy's smoothing)."""
    return targets.float() * (1.0 - label_smoothing) + 0.5 * label_smoothing


def _loss(logits: torch.Tensor, targets: torch.Tensor, label_smoothing: float,
          positive_weights: torch.Tensor | None = None) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, _smoothed(targets, label_smoothing), pos_weight=positive_weights)


# Seven parameters: the Task's distillation signature (student, teacher, targets and the loss's settings).
def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, targets: torch.Tensor,
                      temperature: float, alpha: float, label_smoothing: float = 0.0,
                      positive_weights: torch.Tensor | None = None) -> torch.Tensor:
    """alpha * T^2 * BCE(student_T, sigmoid(teacher_T)) + (1 - alpha) * BCE(student, targets): each tag's
    softened probability is the teacher's answer to imitate."""
    t = temperature
    imitation = F.binary_cross_entropy_with_logits(student_logits / t, torch.sigmoid(teacher_logits / t)) * t * t
    return alpha * imitation + (1.0 - alpha) * _loss(student_logits, targets, label_smoothing, positive_weights)


def positive_weights(targets: np.ndarray, num_tags: int) -> torch.Tensor:
    """Per tag: its negatives over its positives, so a tag on 5% of the images weighs its positives 19x; a tag
    no training image carries (or every one does) weighs 1."""
    targets = np.asarray(targets, dtype=np.float64).reshape(-1, num_tags)
    positives = targets.sum(axis=0)
    negatives = len(targets) - positives
    weights = np.where((positives > 0) & (negatives > 0), negatives / np.maximum(positives, 1), 1.0)
    return torch.tensor(weights, dtype=torch.float32)


def _validation_figures(logits: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
    return {"val_loss": F.binary_cross_entropy_with_logits(logits, targets.float())}


class _AveragePrecision(MultilabelAveragePrecision):
    """torchmetrics' multilabel AP, fed the float multi-hot targets the loss takes (it wants integers)."""

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        super().update(preds, target.round().long())


def _epoch_figures(num_tags: int) -> dict[str, Metric]:
    return {"val_map": _AveragePrecision(num_labels=num_tags, average="macro"),
            "val_macro_f1": MultilabelF1Score(num_labels=num_tags, average="macro")}


def choose_thresholds(targets: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """Per tag, the probability threshold with the best F1 on these images (ties: the higher threshold, fewer
    false alarms); DEFAULT_THRESHOLD for a tag without a positive image. Candidates are the midpoints between
    consecutive distinct probabilities, so the threshold does not sit on an image's own score."""
    targets, probabilities = np.asarray(targets) > 0.5, np.asarray(probabilities, dtype=np.float64)
    chosen = np.full(targets.shape[1], DEFAULT_THRESHOLD)
    for tag in range(targets.shape[1]):
        truth, scores = targets[:, tag], probabilities[:, tag]
        if not truth.any():
            continue
        levels = np.unique(scores)
        candidates = np.concatenate([[levels[0] / 2], (levels[:-1] + levels[1:]) / 2]) if len(levels) > 1 else levels
        best = (-1.0, 0.0)
        for threshold in candidates:
            predicted = scores > threshold
            true_positives = int((predicted & truth).sum())
            f1 = 2 * true_positives / max(int(predicted.sum()) + int(truth.sum()), 1)
            best = max(best, (round(f1, 12), float(threshold)))
        chosen[tag] = best[1]
    return chosen


def tag_metrics(targets: np.ndarray, probabilities: np.ndarray, classes: list[str],
                thresholds: np.ndarray | None = None) -> dict[str, Any]:
    """mAP (the mean of each tag's average precision), macro and micro F1, exact-match ratio and, per tag, AP,
    precision, recall, F1, its threshold and how many images carry it. Tags no image carries have no AP and are
    left out of mAP (as scikit-learn and COCO leave them out)."""
    truth = np.asarray(targets) > 0.5
    scores = np.asarray(probabilities, dtype=np.float64)
    limits = np.full(len(classes), DEFAULT_THRESHOLD) if thresholds is None else np.asarray(thresholds)
    predicted = scores > limits[None, :]
    precision, recall, f1, support = precision_recall_fscore_support(truth, predicted, average=None, zero_division=0)
    ap = [float(average_precision_score(truth[:, i], scores[:, i])) if truth[:, i].any() else None
          for i in range(len(classes))]
    measured = [value for value in ap if value is not None]
    micro = precision_recall_fscore_support(truth, predicted, average="micro", zero_division=0)[2]
    return {
        "map": _r(np.mean(measured)) if measured else 0.0,
        "macro_f1": _r(np.mean(f1)),
        "micro_f1": _r(micro),
        "exact_match": _r(np.mean((predicted == truth).all(axis=1))) if len(truth) else 0.0,
        "images": len(truth),
        "per_class": {name: {"ap": None if ap[i] is None else _r(ap[i]), "precision": _r(precision[i]),
                             "recall": _r(recall[i]), "f1": _r(f1[i]), "threshold": _r(limits[i]),
                             "support": int(support[i])}
                      for i, name in enumerate(classes)},
    }


def _metrics(targets: np.ndarray, logits: np.ndarray, classes: list[str]) -> dict[str, Any]:
    return tag_metrics(targets, sigmoid(logits), classes)


def mean_average_precision(targets: np.ndarray, logits: np.ndarray) -> float:
    """The mean over tags (those some image carries) of each tag's average precision."""
    truth, scores = np.asarray(targets) > 0.5, np.asarray(logits, dtype=np.float64)
    measured = [average_precision_score(truth[:, i], scores[:, i]) for i in range(truth.shape[1]) if truth[:, i].any()]
    return float(np.mean(measured)) if measured else 0.0


def bernoulli_divergence(reference: np.ndarray, other: np.ndarray) -> float:
    """Mean over images of the summed KL divergence of each tag's yes/no distribution, reference against other."""
    eps = 1e-12
    p, q = sigmoid(reference).clip(eps, 1 - eps), sigmoid(other).clip(eps, 1 - eps)
    return float((p * np.log(p / q) + (1 - p) * np.log((1 - p) / (1 - q))).sum(axis=1).mean())


def _r(value: float) -> float:
    return round(float(value), 6)


SCORING = Scoring("val_map", "val mAP", "validation mAP over tags", ("val_map", "test_map"), ("val mAP", "test mAP"))
"""A tagger's pruning rounds and exported variants are scored by the mean of the tags' average precision;
compress.budget.max_accuracy_drop is read on validation mAP."""


TASK = Task(
    name="multilabel", label_fields=("tags",), loss=_loss, distillation=distillation_loss,
    class_weights=positive_weights, validation_figures=_validation_figures, epoch_figures=_epoch_figures,
    history_figures=("val_map", "val_macro_f1"), primary_figure="val_map",
    selection={"val_loss": Selection("min", "lowest validation loss"),
               "val_map": Selection("max", "highest validation mAP over tags"),
               "val_macro_f1": Selection("max", "highest validation macro-F1 over tags")},
    figure_words={"val_map": "mAP", "val_macro_f1": "macro-F1"},
    metrics=_metrics, score=mean_average_precision, divergence=bernoulli_divergence,
    scoring=SCORING, caption=lambda row, classes: ", ".join(c for c, on in zip(classes, row, strict=True) if on > 0.5)
    or "(no tag)", onnx_outputs=("logits", "features"))
