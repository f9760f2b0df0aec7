"""What a vision task must provide, one small part per concern the pipeline touches."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torchmetrics import Metric


@dataclass(frozen=True)
class Task:
    name: str
    label_fields: tuple[str, ...]
    """Manifest columns that carry an image's annotation (classification: the class name)."""
    loss: Callable[[torch.Tensor, torch.Tensor, float, torch.Tensor | None], torch.Tensor]
    """(network outputs, targets, label smoothing, per-class weights or None) -> the training loss of the head."""
    validation_figures: Callable[[torch.Tensor, torch.Tensor], dict[str, torch.Tensor]]
    """(network outputs, targets) -> the figures logged per validation batch; `val_loss` among them."""
    epoch_figures: Callable[[int], dict[str, Metric]]
    """(number of classes) -> torchmetrics metrics updated with (network outputs, targets) on every validation
    batch and computed over the whole epoch (figures a batch mean would get wrong, such as macro-F1)."""
    metrics: Callable[[np.ndarray, np.ndarray, list[str]], dict[str, Any]]
    """(targets, network outputs, class names) -> the evaluation figures written as DVC metrics."""
    onnx_outputs: tuple[str, ...]
    """Names of the exported graph's outputs, in order; the last is the pooled features OOD detectors use."""
