"""Training as `train.freeze` and `train.warm_start` say: a linear probe, or fine-tuning with the first levels
frozen, optionally after a probe. The saved model is always an ordinary one (frozen levels thawed)."""

from __future__ import annotations

import torch
from lightning.pytorch.callbacks import Callback

from core.spec.training import AugmentSection, TrainSection
from vision.data.dataset import SplitData
from vision.tasks.base import Task
from vision.tasks.classification import TASK as CLASSIFICATION
from vision.training.engine import world
from vision.training.fit import TrainResult, fit
from vision.training.freeze import freeze_levels, probe, thaw


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
    thaw(result.model, frozen)
    return result
