"""What a vision task must provide, one small part per concern the pipeline touches."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from vision.compression.scoring import Scoring

if TYPE_CHECKING:  # only training builds metrics: importing torchmetrics costs every other stage 2-3 s
    from torchmetrics import Metric


@dataclass(frozen=True)
class Selection:
    """A validation figure `train.select_by` may name: whether lower or higher is better, and how the train log
    says it."""

    mode: str
    """`min` or `max`."""
    words: str
    """`lowest validation loss`..."""

    def improves(self, candidate: float, best: float | None) -> bool:
        """Whether `candidate` is strictly better than `best` (None: nothing kept yet); ties keep what was kept
        first, as a fit keeps its earlier epoch."""
        return best is None or (candidate < best if self.mode == "min" else candidate > best)


# Sixteen fields: one per concern of the pipeline that differs between tasks; grouping them further would only
# hide which concern each serves.
@dataclass(frozen=True)
class Task:
    name: str
    label_fields: tuple[str, ...]
    """Manifest columns that carry an image's annotation (classification: the class name)."""
    loss: Callable[[torch.Tensor, torch.Tensor, float, torch.Tensor | None], torch.Tensor]
    """(network outputs, targets, label smoothing, per-class weights or None) -> the training loss of the head."""
    distillation: Callable[[torch.Tensor, torch.Tensor, torch.Tensor, float, float, float, torch.Tensor | None],
                           torch.Tensor]
    """(student outputs, teacher outputs, targets, temperature, alpha, label smoothing, per-class weights) -> the
    loss of a student learning from a teacher and the labels."""
    class_weights: Callable[[np.ndarray, int], torch.Tensor]
    """(training targets, number of classes) -> the per-class weights `train.balance: loss` gives the loss."""
    validation_figures: Callable[[torch.Tensor, torch.Tensor], dict[str, torch.Tensor]]
    """(network outputs, targets) -> the figures logged per validation batch; `val_loss` among them."""
    epoch_figures: Callable[[int], dict[str, Metric]]
    """(number of classes) -> torchmetrics metrics updated with (network outputs, targets) on every validation
    batch and computed over the whole epoch (figures a batch mean would get wrong, such as macro-F1)."""
    history_figures: tuple[str, ...]
    """The validation figures besides `val_loss` that each epoch's row of the training history holds."""
    primary_figure: str
    """The validation figure a search trial is scored by and the train log compares epochs on."""
    selection: Mapping[str, Selection]
    """The figures `train.select_by` may name for this task."""
    figure_words: Mapping[str, str]
    """How the train log names each history figure (`accuracy`, `macro-F1`)."""
    metrics: Callable[[np.ndarray, np.ndarray, list[str]], dict[str, Any]]
    """(targets, network outputs, class names) -> the evaluation figures written as DVC metrics."""
    score: Callable[[np.ndarray, np.ndarray], float]
    """(targets, network outputs) -> the one validation figure compression keeps above its floor (Scoring.field:
    accuracy, mAP over tags)."""
    divergence: Callable[[np.ndarray, np.ndarray], float]
    """(reference outputs, other outputs) -> how far the other's answers moved, averaged over images (the int8
    sensitivity of a layer)."""
    scoring: Scoring
    """How compression and export name and tabulate `score` (vision.compression.scoring)."""
    caption: Callable[[np.ndarray, list[str]], str]
    """(one image's target, class names) -> how a picture captions it (`cat`; `night, rain`)."""
    onnx_outputs: tuple[str, ...]
    """Names of the exported graph's outputs, in order; the last is the pooled features OOD detectors use."""
