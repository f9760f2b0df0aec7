"""The Lightning training engine shared by train (from scratch or pretrained) and compress (fine-tuning).

One place defines how a model is fitted: the spec's optimizer and schedule, BatchNorm statistics refreshed
before validation, the epoch with the lowest validation loss kept, optional distillation from a teacher.
Deterministic on CPU (seeded, deterministic algorithms, seeded augmentations, single-process loading from
memory): the same inputs give the same weights, byte for byte.

Distributed data parallel when a launcher says so: under `torchrun` (WORLD_SIZE and LOCAL_WORLD_SIZE) or a
Kubeflow PyTorchJob (WORLD_SIZE and RANK per pod), Lightning's DDP runs one process per device with the
gloo backend on CPU; each rank trains on its shard, validation figures are averaged over ranks, and only
rank 0 keeps the best checkpoint and returns the model (`TrainResult.primary`).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from torch.optim.swa_utils import update_bn
from torch.utils.data import DataLoader

from core.spec.training import AugmentSection, TrainSection
from vision.data.dataset import SplitData
from vision.tasks.base import Task
from vision.tasks.classification import TASK as CLASSIFICATION
from vision.training.engine import (
    FitResult,
    History,
    optimizer_for,
    quiet_lightning,
    run_fit,
    scheduler_for,
    world,
)
from vision.training.frozen_prefix import CHECK_IMAGES, frozen_prefix
from vision.training.loaders import BN_REFRESH_MAX_STEPS, Loaders, fit_loaders


def history_fields(task: Task) -> tuple[str, ...]:
    """The columns of a task's training history, one row per epoch."""
    return ("epoch", "train_loss", "val_loss", *task.history_figures, "lr")


HISTORY_FIELDS = history_fields(CLASSIFICATION)


@dataclass(frozen=True)
class Teacher:
    """A trained model whose softened predictions the student learns from (Hinton et al. 2015).

    Held in a plain dataclass so Lightning neither trains nor checkpoints it.
    """

    model: torch.nn.Module
    temperature: float = 4.0
    alpha: float = 0.7
    """Weight of the imitation term; the loss on the labels gets 1 - alpha."""


class Classifier(L.LightningModule):
    """Training of any timm model with the spec's optimizer and schedule: the task's loss (vision.tasks), or
    distillation when a teacher is given."""

    def __init__(self, model: torch.nn.Module, training: TrainSection, bn_loader: DataLoader,
                 teacher: Teacher | None = None, task: Task = CLASSIFICATION,
                 class_weights: torch.Tensor | None = None):
        super().__init__()
        self.model, self.training, self.bn_loader, self.teacher, self.task = model, training, bn_loader, teacher, task
        self.class_weights = class_weights
        self.epoch_figures = torch.nn.ModuleDict(task.epoch_figures(int(model.num_classes)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        x = x.contiguous(memory_format=torch.channels_last)
        if self.teacher is None:
            loss = self.task.loss(self(x), y, self.training.label_smoothing, self.class_weights)
        else:
            with torch.no_grad():
                teacher_logits = self.teacher.model.eval()(x)
            loss = self.task.distillation(self(x), teacher_logits, y, self.teacher.temperature, self.teacher.alpha,
                                          self.training.label_smoothing, self.class_weights)
        self.log("train_loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=len(y), sync_dist=True)
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        x = x.contiguous(memory_format=torch.channels_last)
        outputs = self(x)
        for name, value in self.task.validation_figures(outputs, y).items():
            self.log(name, value, prog_bar=True, batch_size=len(y), sync_dist=True)
        for name, metric in self.epoch_figures.items():
            metric.update(outputs, y)
            self.log(name, metric, on_step=False, on_epoch=True, batch_size=len(y))

    def on_validation_epoch_start(self) -> None:
        """Recompute BatchNorm statistics over the whole training split before validating.

        The running statistics are an exponential average over recent steps; on a small (or pruned)
        training set an epoch has only a few steps, so they lag the weights and the model in eval mode
        scores near chance while its training loss is near zero. One forward pass over the training data
        (torch's own `update_bn`, as used for SWA) makes validation, model selection and the saved model
        use statistics that match the weights. The pass sees the images without augmentation: those are
        what the model meets in evaluation and serving. It pays only while an epoch is short: after
        BN_REFRESH_MAX_STEPS steps the running average has caught up on its own, and the pass would cost a
        forward over the whole split for nothing; frozen levels (FrozenBatchNorm2d) are never touched.
        """
        steps = self.trainer.num_training_batches
        if not self.trainer.sanity_checking and steps < BN_REFRESH_MAX_STEPS:
            update_bn(self.bn_loader, self.model)

    def configure_optimizers(self):
        optimizer = optimizer_for(self.model.parameters(), self.training)
        return {"optimizer": optimizer, "lr_scheduler": scheduler_for(optimizer, self.training)}




@dataclass(frozen=True)
class TrainResult(FitResult):
    """A fit of an image-level task (vision.training.engine.FitResult)."""

    task: Task = CLASSIFICATION

    @property
    def score(self) -> float:
        """The task's primary validation figure (accuracy for a classifier) of the kept weights."""
        return self.kept[self.task.primary_figure]

    @property
    def val_accuracy(self) -> float:
        """Validation accuracy of a classifier's kept weights."""
        return self.kept["val_accuracy"]

    def summary(self) -> str:
        """Which epoch was kept, by which criterion, and how it compares with the epoch best by the task's primary
        figure."""
        kept, task, primary = self.kept, self.task, self.task.primary_figure
        figures = ", ".join(f"{task.figure_words[name]} {kept[name]:.4f}" for name in task.history_figures)
        line = (f"kept epoch {self.kept_epoch} of {len(self.history)} ({task.selection[self.selected_by].words}, "
                f"train.select_by: {self.selected_by}): val loss {kept['val_loss']:.4f}, {figures}")
        top = max(self.history, key=lambda row: row[primary])
        if top[primary] > kept[primary]:
            line += (f"; epoch {int(top['epoch'])} reached the highest val {task.figure_words[primary]}, "
                     f"{top[primary]:.4f}")
        return line


# Ten parameters: the data, the spec's training section and the seed are what every caller varies; the
# keyword-only rest are optional hooks (teacher, callbacks, task, frozen levels) with defaults, not a settings
# object to build.
def fit(model: torch.nn.Module, train: SplitData, val: SplitData, training: TrainSection, seed: int,
        augment: AugmentSection | None = None, *, teacher: Teacher | None = None,
        callbacks: tuple[Callback, ...] = (), progress: bool = True, task: Task = CLASSIFICATION,
        label: str = "train", frozen: tuple[str, ...] = ()) -> TrainResult:
    """Train `model` in place for `training.epochs` and return it with the weights of its best epoch by
    `training.select_by` (lowest validation loss by default: on a validation split of a few hundred images
    accuracy moves in steps of one image and often peaks early by chance, while the loss keeps ranking epochs).

    `callbacks` are extra Lightning callbacks (the HPO pruning hook); `augment` None trains on the images as
    they are; `teacher` switches the loss to distillation; `task` says what the loss and validation figures are;
    `progress` shows Lightning's bar on a terminal and `label`-ed lines at a steady rate anywhere else;
    `frozen` names the modules of the frozen first levels (vision.training.freeze), which then run once per image
    where augmentation allows (not with a teacher, which reads the images themselves).
    """
    L.seed_everything(seed, workers=True, verbose=False)
    quiet_lightning()
    with tempfile.TemporaryDirectory(prefix="autodl-fit-") as work_dir, frozen_prefix(
            model, list(frozen) if teacher is None else [], train.images[:CHECK_IMAGES]) as prefix:
        if prefix is not None:
            prefix.to(memory_format=torch.channels_last)
        loaders = fit_loaders(train, val, training, seed, augment, prefix, Path(work_dir), label, progress)
        if frozen and progress and world()[0] == 0:
            print(f"{label}: {len(frozen)} frozen modules " + (
                "split off; their activations computed once per image" if loaders.cached else
                "split off; run per batch without autograd (augmentation changes their input)" if prefix else
                "kept in the model (their forward is not a plain sequence)"), flush=True)
        result = _fit(model, loaders, training, teacher, callbacks, progress, task, label)
    model.to(memory_format=torch.contiguous_format)  # the frozen levels too, now that they are back in place
    return result


# Eight parameters: fit's own, with the data already turned into loaders.
def _fit(model: torch.nn.Module, loaders: Loaders, training: TrainSection, teacher: Teacher | None,
         callbacks: tuple[Callback, ...], progress: bool, task: Task, label: str) -> TrainResult:
    # channels-last: oneDNN's convolutions (forward and, above all, backward) run 1.5-3x faster on CPU in this
    # layout (benchmarks/training.py); the model goes back to the ordinary layout before it is returned
    model.to(memory_format=torch.channels_last)
    model.train()  # Lightning keeps each module's train/eval mode: a model handed over in eval mode would
    # fine-tune with frozen BatchNorm statistics and no dropout (compress passes eval-mode models)
    weights = task.class_weights(loaders.labels, int(model.num_classes)) if training.balance == "loss" else None
    module = Classifier(model, training, bn_loader=loaders.bn, teacher=teacher, task=task, class_weights=weights)
    history = History(history_fields(task)[1:-1])
    monitor = training.selection()
    fitted = run_fit(module, (loaders.train, loaders.val), training, (monitor, task.selection[monitor].mode),
                     history, callbacks, progress, label)
    if fitted.state is None:
        return TrainResult(module.model.eval(), history.rows, len(history.rows), monitor, primary=False, task=task)
    module.load_state_dict(fitted.state)
    module.model.to(memory_format=torch.contiguous_format)
    return TrainResult(module.model.eval(), history.rows, fitted.kept_epoch, monitor, task=task)
