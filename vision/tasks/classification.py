"""Classification: one class per image, a softmax head trained with cross-entropy."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

from vision.compression.scoring import Scoring
from vision.tasks.base import Selection, Task
from vision.training.metrics import classification_metrics

if TYPE_CHECKING:
    from torchmetrics import Metric


def _loss(logits: torch.Tensor, labels: torch.Tensor, label_smoothing: float,
          class_weights: torch.Tensor | None = None) -> torch.Tensor:
    return F.cross_entropy(logits, labels, weight=class_weights, label_smoothing=label_smoothing)


# Seven parameters: the Task's distillation signature (student, teacher, labels and the loss's settings).
def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor,
                      temperature: float, alpha: float, label_smoothing: float = 0.0,
                      class_weights: torch.Tensor | None = None) -> torch.Tensor:
    """alpha * T^2 * KL(teacher_T || student_T) + (1 - alpha) * CE(student, labels) (Hinton et al. 2015)."""
    t = temperature
    kl = F.kl_div(F.log_softmax(student_logits / t, dim=1), F.log_softmax(teacher_logits / t, dim=1),
                  log_target=True, reduction="batchmean") * t * t
    ce = F.cross_entropy(student_logits, labels, weight=class_weights, label_smoothing=label_smoothing)
    return alpha * kl + (1.0 - alpha) * ce


def class_weights(labels: np.ndarray, num_classes: int) -> torch.Tensor:
    """Per class: the inverse of its share of the labels, scaled so the weights average 1 over the images (a
    class with no image gets 0)."""
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    weights = np.where(counts > 0, len(labels) / (np.count_nonzero(counts) * np.maximum(counts, 1)), 0.0)
    return torch.tensor(weights, dtype=torch.float32)


def _validation_figures(logits: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
    return {"val_loss": F.cross_entropy(logits, labels), "val_accuracy": (logits.argmax(1) == labels).float().mean()}


def _epoch_figures(num_classes: int) -> dict[str, Metric]:
    # imported here: only training builds the metrics, and torchmetrics' import costs every other stage 2-3 s
    from torchmetrics.classification import MulticlassConfusionMatrix, MulticlassF1Score

    class LowestClassRecall(MulticlassConfusionMatrix):
        """The recall of the class the model finds least often, over the classes the validation split holds: what
        `dependability.min_class_recall` gates on. torchmetrics gives per-class recall, not its minimum, and
        counts a class with no validation image as recall 0; its confusion matrix gives both answers."""

        def compute(self) -> torch.Tensor:
            matrix = super().compute().double()
            support = matrix.sum(1)
            present = support > 0
            return (matrix.diagonal()[present] / support[present]).min().float() if present.any() \
                else torch.tensor(0.0)

    return {"val_macro_f1": MulticlassF1Score(num_classes=num_classes, average="macro"),
            "val_min_recall": LowestClassRecall(num_classes=num_classes)}


def _metrics(labels: np.ndarray, logits: np.ndarray, classes: list[str]) -> dict[str, Any]:
    return classification_metrics(labels, np.asarray(logits).argmax(axis=1), classes)


def top1_accuracy(labels: np.ndarray, logits: np.ndarray) -> float:
    return float((np.asarray(logits).argmax(1) == labels).mean())


def softmax_divergence(reference: np.ndarray, other: np.ndarray) -> float:
    """Mean KL divergence of the class distribution, reference against other."""
    def log_softmax(z: np.ndarray) -> np.ndarray:
        shifted = z - z.max(axis=1, keepdims=True)
        return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))

    p_log, q_log = log_softmax(reference.astype(np.float64)), log_softmax(other.astype(np.float64))
    return float((np.exp(p_log) * (p_log - q_log)).sum(axis=1).mean())


SCORING = Scoring("val_accuracy", "val accuracy", "validation accuracy", ("val_accuracy", "test_accuracy"),
                  ("val acc", "test acc"))
"""A classifier's pruning rounds and exported variants are scored by accuracy; compress.budget.max_accuracy_drop
is read on validation accuracy."""


TASK = Task(
    name="classification", label_fields=("label",), loss=_loss, distillation=distillation_loss,
    class_weights=class_weights, validation_figures=_validation_figures, epoch_figures=_epoch_figures,
    history_figures=("val_accuracy", "val_macro_f1", "val_min_recall"), primary_figure="val_accuracy",
    selection={"val_loss": Selection("min", "lowest validation loss"),
               "val_accuracy": Selection("max", "highest validation accuracy"),
               "val_macro_f1": Selection("max", "highest validation macro-F1"),
               "val_min_recall": Selection("max", "highest validation recall of the class found least often")},
    figure_words={"val_accuracy": "accuracy", "val_macro_f1": "macro-F1", "val_min_recall": "lowest class recall"},
    metrics=_metrics, score=top1_accuracy, divergence=softmax_divergence, scoring=SCORING,
    caption=lambda label, classes: classes[int(label)], onnx_outputs=("logits", "features"))
