"""The parts of a Lightning fit every task shares: the spec's optimizer and learning-rate schedule, the
launcher's process layout (DDP on gloo under torchrun or a PyTorchJob), quiet start-up, and progress as
plain lines where stdout is not a terminal."""

from __future__ import annotations

import logging
import os
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

from core.progress import Progress
from core.spec.training import TrainSection


def optimizer_for(parameters, training: TrainSection) -> torch.optim.Optimizer:
    opt = training.optimizer
    if opt.name == "sgd":
        return torch.optim.SGD(parameters, lr=opt.lr, momentum=opt.momentum, weight_decay=opt.weight_decay)
    cls = torch.optim.AdamW if opt.name == "adamw" else torch.optim.Adam
    return cls(parameters, lr=opt.lr, weight_decay=opt.weight_decay)


def scheduler_for(optimizer: torch.optim.Optimizer, training: TrainSection) -> torch.optim.lr_scheduler.LRScheduler:
    """Per-epoch schedule: optional linear warm-up, then cosine to zero, step decay, or constant."""
    warmup = min(training.scheduler.warmup_epochs, training.epochs - 1)
    rest = training.epochs - warmup
    sched = torch.optim.lr_scheduler
    if training.scheduler.name == "cosine":
        main = sched.CosineAnnealingLR(optimizer, T_max=max(rest, 1))
    elif training.scheduler.name == "step":
        main = sched.MultiStepLR(optimizer, milestones=[max(rest // 2, 1), max(3 * rest // 4, 1)], gamma=0.1)
    else:
        main = sched.ConstantLR(optimizer, factor=1.0)
    if warmup == 0:
        return main
    ramp = sched.LinearLR(optimizer, start_factor=1.0 / (warmup + 1), total_iters=warmup)
    return sched.SequentialLR(optimizer, [ramp, main], milestones=[warmup])


class LineProgress(Callback):
    """Training progress as plain lines at a steady rate (core.progress) where stdout is not a terminal, so a log
    shows the epochs as they pass instead of one bar at the end."""

    def __init__(self, label: str, figure: str = "val_accuracy", words: str = "accuracy") -> None:
        self.label, self.figure, self.words = label, figure, words
        self.progress: Progress | None = None
        self.last_val = ""

    def on_train_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if trainer.is_global_zero:
            batches = trainer.num_training_batches
            total = int(trainer.max_epochs * batches) if batches != float("inf") else None
            self.progress = Progress(self.label, total, unit="batch")

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if self.progress is not None:
            self.progress.update(1, f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs}{self.last_val}")

    def on_validation_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self._remember(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        """Again after validation's figures are all in: a module that logs them in its own epoch-end hook does so
        after the callbacks' hook has run."""
        self._remember(trainer)

    def _remember(self, trainer: L.Trainer) -> None:
        metrics = trainer.callback_metrics
        if "val_loss" in metrics and self.figure in metrics:
            self.last_val = (f", epoch {trainer.current_epoch + 1} val loss {float(metrics['val_loss']):.4f} "
                             f"{self.words} {float(metrics[self.figure]):.4f}")

    def on_train_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if self.progress is not None:
            self.progress.detail = self.last_val.removeprefix(", ")
            self.progress.close()


def world() -> tuple[int, int]:
    """(this process's rank, number of processes) as the launcher set them; (0, 1) when run on its own."""
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def launch_arguments() -> dict[str, Any]:
    """Trainer arguments for the processes the launcher started: one device per process, gloo on CPU."""
    _, size = world()
    if size == 1:
        return {"devices": 1}
    from lightning.pytorch.strategies import DDPStrategy

    per_node = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))  # torchrun sets it; a PyTorchJob runs one per pod
    return {"devices": per_node, "num_nodes": size // per_node,
            "strategy": DDPStrategy(process_group_backend="gloo")}


def quiet_lightning() -> None:
    """Drop Lightning's start-up chatter (accelerator inventory, adverts); warnings still show."""
    logging.getLogger("lightning.pytorch.utilities.rank_zero").setLevel(logging.WARNING)
