"""The parts of a Lightning fit every task shares: the spec's optimizer and learning-rate schedule, the
launcher's process layout (DDP on gloo under torchrun or a PyTorchJob), quiet start-up, and progress as
plain lines where stdout is not a terminal."""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint
from lightning.pytorch.utilities.warnings import PossibleUserWarning
from torch.utils.data import DataLoader

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


class History(Callback):
    """One row per epoch with the figures people plot (Lightning's CSV logger splits them over rows): the
    epoch, each of `fields` as logged (rounded to 6 decimals), and the learning rate the epoch trained with."""

    def __init__(self, fields: tuple[str, ...]) -> None:
        self.fields = fields
        self.rows: list[dict[str, float]] = []
        self._lr = 0.0

    def on_train_epoch_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self._lr = float(trainer.optimizers[0].param_groups[0]["lr"])  # the rate this epoch trains with

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        metrics = trainer.callback_metrics
        self.rows.append({"epoch": trainer.current_epoch + 1,
                          **{name: round(float(metrics[name]), 6) for name in self.fields},
                          "lr": float(f"{self._lr:.6g}")})


@dataclass(frozen=True)
class Fitted:
    """What a Lightning fit leaves: the best epoch's weights (None on the other ranks of a distributed run, which
    did not keep them) and which epoch that was (1-based)."""

    state: dict[str, torch.Tensor] | None
    kept_epoch: int


@contextmanager
def deterministic_unfilled() -> Iterator[None]:
    """Deterministic algorithms (Lightning's `deterministic=True` turns them on) without torch's fill of every new
    tensor's memory with NaN. The fill is a debugging aid that makes a kernel reading memory it never wrote show;
    it changes no result of a kernel that writes all of its output (a detector's weights after a training step come
    out bit-identical with and without it), and it cost 13-25% of a detector's training step on a 2-core CPU
    (318 against 392 ms per batch of 8, measured in one process)."""
    settings = torch.utils.deterministic
    previous = settings.fill_uninitialized_memory
    settings.fill_uninitialized_memory = False
    try:
        yield
    finally:
        settings.fill_uninitialized_memory = previous


# Eight parameters: the module and its data, the spec's training section, what selects the kept epoch, and how
# progress shows; callers build the module, the loaders and the history their task needs.
def run_fit(module: L.LightningModule, loaders: tuple[DataLoader, DataLoader], training: TrainSection,
            selection: tuple[str, str], history: History, callbacks: tuple[Callback, ...], progress: bool,
            label: str, shown: tuple[str, str] = ("val_accuracy", "accuracy")) -> Fitted:
    """Lightning's fit for `training.epochs`, keeping the best epoch by `selection` (figure, min or max), with
    early stopping when the spec asks, deterministic on CPU, progress as a bar on a terminal and as `label`-ed
    lines showing `shown` (figure, words) elsewhere."""
    monitor, mode = selection
    with tempfile.TemporaryDirectory(prefix="autodl-ckpt-") as ckpt_dir, deterministic_unfilled():
        best = ModelCheckpoint(dirpath=ckpt_dir, monitor=monitor, mode=mode, save_top_k=1,
                               save_weights_only=True, filename="best-{epoch}", auto_insert_metric_name=False)
        all_callbacks: list[Callback] = [history, best, *callbacks]
        terminal = sys.stdout.isatty()
        if progress and not terminal:
            all_callbacks.append(LineProgress(label, *shown))
        if training.early_stopping_patience:
            all_callbacks.append(EarlyStopping(monitor, mode=mode, patience=training.early_stopping_patience))
        trainer = L.Trainer(max_epochs=training.epochs, accelerator="cpu", **launch_arguments(), deterministic=True,
                            logger=False, callbacks=all_callbacks, enable_model_summary=False,
                            enable_progress_bar=progress and terminal, num_sanity_val_steps=0,
                            default_root_dir=ckpt_dir)
        with warnings.catch_warnings():
            # Data is read in the main process on purpose (deterministic order): no loader workers.
            warnings.filterwarnings("ignore", ".*does not have many workers.*", PossibleUserWarning)
            # Raised inside lightning's own pytree helper under torch >= 2.14; nothing a user can act on.
            warnings.filterwarnings("ignore", ".*isinstance\\(treespec, LeafSpec\\).*")
            trainer.fit(module, *loaders)
        if not trainer.is_global_zero:  # rank 0 alone saved the best checkpoint, on its own filesystem
            return Fitted(None, len(history.rows))
        state = torch.load(best.best_model_path, map_location="cpu", weights_only=True)["state_dict"]
        # the checkpoint's own name says which epoch it holds ("best-<0-based epoch>.ckpt")
        return Fitted(state, int(Path(best.best_model_path).stem.removeprefix("best-")) + 1)


@dataclass(frozen=True)
class FitResult:
    """A trained model and what its fit measured, whatever the task: every epoch's figures and which epoch's
    weights the model holds (each task's result adds how it sums itself up)."""

    model: torch.nn.Module
    history: list[dict[str, float]]
    kept_epoch: int
    """The epoch (1-based) whose weights `model` holds: the best by `selected_by`."""
    selected_by: str
    primary: bool = True
    """False on the other ranks of a distributed run: their model is not the kept one; write nothing."""

    @property
    def kept(self) -> dict[str, float]:
        """The kept epoch's row of `history`."""
        return self.history[self.kept_epoch - 1]
