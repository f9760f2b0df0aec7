"""Classification: one class per image, a softmax head trained with cross-entropy."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torchmetrics import Metric
from torchmetrics.classification import MulticlassF1Score

from vision.compression.scoring import Scoring
from vision.tasks.base import Task
from vision.training.metrics import classification_metrics


def _loss(logits: torch.Tensor, labels: torch.Tensor, label_smoothing: float,
          class_weights: torch.Tensor | None = None) -> torch.Tensor:
    return F.cross_entropy(logits, labels, weight=class_weights, label_smoothing=label_smoothing)


def _validation_figures(logits: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
    return {"val_loss": F.cross_entropy(logits, labels), "val_accuracy": (logits.argmax(1) == labels).float().mean()}


def _epoch_figures(num_classes: int) -> dict[str, Metric]:
    return {"val_macro_f1": MulticlassF1Score(num_classes=num_classes, average="macro")}


def _metrics(labels: np.ndarray, logits: np.ndarray, classes: list[str]) -> dict[str, Any]:
    return classification_metrics(labels, np.asarray(logits).argmax(axis=1), classes)


TASK = Task(name="classification", label_fields=("label",), loss=_loss, validation_figures=_validation_figures,
            epoch_figures=_epoch_figures, metrics=_metrics, onnx_outputs=("logits", "features"))

SCORING = Scoring("val_accuracy", "val accuracy", "validation accuracy", ("val_accuracy", "test_accuracy"),
                  ("val acc", "test acc"))
"""A classifier's pruning rounds and exported variants are scored by accuracy; compress.budget.max_accuracy_drop
is read on validation accuracy."""
