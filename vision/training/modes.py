"""Training as `train.freeze`, `train.thaw_epochs` and `train.warm_start` say: a linear probe, or fine-tuning with
the first levels frozen, optionally after a probe and optionally followed by epochs that train every level. The
saved model is always an ordinary one (frozen levels thawed)."""

from __future__ import annotations

import copy

import torch
from lightning.pytorch.callbacks import Callback

from core.spec.training import AugmentSection, TrainSection
from vision.data.dataset import SplitData
from vision.tasks.base import Task
from vision.tasks.classification import TASK as CLASSIFICATION
from vision.training.engine import world
from vision.training.fit import TrainResult, fit
from vision.training.freeze import freeze_levels, probe, thaw

THAW_LR_SHARE = 0.1
"""Share of the learning rate the epochs that train every level use: the head is trained by then, and the
pretrained levels should move only as far as the data asks."""


# Nine parameters, as fit(): the data, the spec's training section and the seed, then keyword-only hooks.
def fit_with_mode(model: torch.nn.Module, train: SplitData, val: SplitData, training: TrainSection, seed: int,
                  augment: AugmentSection | None = None, *, callbacks: tuple[Callback, ...] = (),
                  progress: bool = True, task: Task = CLASSIFICATION, label: str = "train") -> TrainResult:
    if training.freeze == "all" or training.warm_start:
        probed = probe(model, train, val, training, seed)
        if progress and world()[0] == 0:
            kept = probed.history[probed.kept_epoch - 1]
            print(f"{label}: linear probe on cached features kept epoch {probed.kept_epoch} of "
                  f"{len(probed.history)}: val accuracy {kept['val_accuracy']:.4f}, macro-F1 "
                  f"{kept['val_macro_f1']:.4f}", flush=True)
        if training.freeze == "all":
            return TrainResult(model.eval(), probed.history, probed.kept_epoch, training.selection(),
                               primary=world()[0] == 0)
    frozen = freeze_levels(model, 0 if training.freeze == "auto" else int(training.freeze))  # auto: no plan
    result = fit(model, train, val, training, seed, augment, callbacks=callbacks, progress=progress, task=task,
                 label=label, frozen=tuple(frozen))
    epochs = training.thaw_epochs if isinstance(training.thaw_epochs, int) else 0  # auto: no plan
    if frozen and epochs:
        result = every_level(result, frozen, train, val, training.model_copy(update={"thaw_epochs": epochs}),
                             seed, augment, callbacks=callbacks, progress=progress, task=task, label=label)
    thaw(result.model, frozen)
    return result


def every_level(frozen: TrainResult, names: list[str], train: SplitData, val: SplitData, training: TrainSection,
                seed: int, augment: AugmentSection | None, *, callbacks: tuple[Callback, ...], progress: bool,
                task: Task, label: str) -> TrainResult:
    """`training.thaw_epochs` more epochs with every level's weights trained, from the frozen phase's kept
    weights at THAW_LR_SHARE of the learning rate; one history, and the better phase's kept weights by
    `select_by` (the frozen phase's when training every level did not improve on it).

    The frozen levels (`names`) keep their BatchNorm statistics and affine terms fixed while their convolutions
    train: measured on the fabric proxy (Lite0, 256 px, 4 levels), letting augmented batches move the ImageNet
    statistics dropped validation accuracy from 0.937 to 0.83 in the first thawed epoch; with them fixed, two
    thawed epochs raised it to 0.943."""
    before = copy.deepcopy(frozen.model.state_dict())
    for name in names:  # still FrozenBatchNorm2d (buffers) from the frozen phase: only the weights thaw
        for parameter in frozen.model.get_submodule(name).parameters():
            parameter.requires_grad = True
    slower = training.optimizer.model_copy(update={"lr": training.optimizer.lr * THAW_LR_SHARE})
    settings = training.model_copy(update={"epochs": training.thaw_epochs, "optimizer": slower, "freeze": 0,
                                           "thaw_epochs": 0, "warm_start": False})
    second = fit(frozen.model, train, val, settings, seed, augment, callbacks=callbacks, progress=progress,
                 task=task, label=f"{label}: every level")
    offset = len(frozen.history)
    history = [*frozen.history, *({**row, "epoch": row["epoch"] + offset} for row in second.history)]
    if not second.primary:
        return TrainResult(second.model, history, offset + second.kept_epoch, second.selected_by, primary=False,
                           task=task)
    better = task.selection[second.selected_by].improves(second.kept[second.selected_by],
                                                         frozen.kept[second.selected_by])
    if not better:
        second.model.load_state_dict(before)
    if progress and world()[0] == 0:
        print(f"{label}: {training.thaw_epochs} epoch(s) with every level trained "
              f"{'improved on' if better else 'did not improve on'} the frozen levels' epoch {frozen.kept_epoch} "
              f"by {second.selected_by}", flush=True)
    return TrainResult(second.model, history, offset + second.kept_epoch if better else frozen.kept_epoch,
                       second.selected_by, primary=True, task=task)
