"""Joint training and pruning: group-sparsity training drives whole channel groups to zero, then they go.

torch-pruning's GroupNormPruner supplies the regulariser (over each coupled
group: a convolution's output channels, its BatchNorm and every consumer's
input channels; applied after every optimizer step) and its dependency
graph removes the groups. Only the choice of what to remove is made here: the
groups the training itself drove to (near) zero, not a ratio fixed beforehand,
so the network's width is learned.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import lightning as L
import torch
import torch_pruning as tp
from torch import nn

from core.spec.deployment import SparseTraining
from core.spec.training import AugmentSection, TrainSection
from vision.compression.pruning import ROUND_TO, PruningStep
from vision.data.dataset import SplitData
from vision.tasks.base import Task
from vision.tasks.classification import TASK as CLASSIFICATION
from vision.training.fit import fit

PRUNABLE = (nn.Conv2d, nn.Linear)


class _GroupRegulariser(L.Callback):
    """Shrinks every channel group after each optimizer step by torch-pruning's group regulariser, and keeps
    the last epoch's weights.

    Decoupled from the optimizer, as AdamW decouples weight decay: torch-pruning adds its term to the
    gradients, but Adam divides each gradient by its running scale, so a term that dominates a redundant
    group's gradient moves it by about one learning rate per step whatever its strength (measured: 3 epochs
    at any `reg` zeroed nothing on the digits model). Applied to the weights after the step, the group
    shrinks by `lr x reg x alpha-scaling` of itself each step, with SGD or Adam alike. The last epoch is kept
    because the groups shrink epoch after epoch; fit's choice (the best validation loss) is usually an early
    epoch, before they reached zero."""

    def __init__(self, pruner: tp.pruner.GroupNormPruner, pressure: float):
        self.pruner, self.pressure = pruner, pressure
        self.last: dict[str, torch.Tensor] = {}

    @torch.no_grad()
    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: object, batch: object,
                           batch_idx: int) -> None:
        model = pl_module.model
        params = [p for p in model.parameters() if p.grad is not None]
        gradients = [p.grad.clone() for p in params]
        for p in params:
            p.grad.zero_()
        self.pruner.regularize(model, alpha=self.pressure)  # writes reg x scaling x w into the gradients
        lr = trainer.optimizers[0].param_groups[0]["lr"]
        for p, gradient in zip(params, gradients, strict=True):
            p.sub_(lr * p.grad)
            p.grad.copy_(gradient)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.last = {key: value.detach().clone() for key, value in pl_module.model.state_dict().items()}


def _classifier(model: nn.Module) -> list[nn.Module]:
    return [model.get_classifier()] if hasattr(model, "get_classifier") else []


# Eight parameters: the trained model, its data, the three settings that shape the training, and the task whose
# loss it trains with.
def sparse_train(trained: nn.Module, train: SplitData, val: SplitData, training: TrainSection, sparsity: SparseTraining,
                 seed: int, augment: AugmentSection | None = None, task: Task = CLASSIFICATION) -> nn.Module:
    """A copy of `trained` trained `sparsity.epochs` more epochs with the group regulariser on."""
    model = copy.deepcopy(trained).eval()
    size_px = int(train.images.shape[1])
    pruner = tp.pruner.GroupNormPruner(model, torch.zeros(1, 3, size_px, size_px),
                                       importance=tp.importance.GroupMagnitudeImportance(p=2),
                                       reg=sparsity.regularisation, ignored_layers=_classifier(model))
    settings = training.model_copy(update={"epochs": sparsity.epochs, "hpo": None, "early_stopping_patience": 0})
    regulariser = _GroupRegulariser(pruner, sparsity.weakest_pressure)
    fit(model, train, val, settings, seed, augment, callbacks=(regulariser,), progress=False, task=task,
        label="compress: sparse training")
    model.load_state_dict(regulariser.last)
    return model.eval()


@dataclass(frozen=True)
class ZeroedPruning:
    model: nn.Module
    history: list[PruningStep]
    removed: dict[str, int]
    """Channels removed, by the name of each group's first layer."""


def _removable(channels: int, zeroed: int) -> int:
    """How many of `zeroed` channels to remove: all of them in narrow layers, and in layers of at least two
    ROUND_TO blocks only as many as keep the width a multiple of ROUND_TO (the fast int8 and SIMD shapes)."""
    if channels < 2 * ROUND_TO or channels % ROUND_TO:
        return min(zeroed, channels - 1)
    remaining = -(-(channels - zeroed) // ROUND_TO) * ROUND_TO
    return channels - max(remaining, ROUND_TO)


def prune_zeroed(model: nn.Module, size_px: int, zero_below: float) -> ZeroedPruning:
    """Remove, in place, every channel group whose norm is below `zero_below` x the largest of its layer."""
    model.eval()
    graph = tp.DependencyGraph().build_dependency(model, torch.zeros(1, 3, size_px, size_px), verbose=False)
    importance = tp.importance.GroupMagnitudeImportance(p=2, normalizer=None)
    names = {module: name for name, module in model.named_modules()}
    removed: dict[str, int] = {}
    for group in list(graph.get_all_groups(ignored_layers=_classifier(model), root_module_types=PRUNABLE)):
        scores = importance(group)  # sums of squares: the norms are their roots
        scores = None if scores is None else scores.clamp_min(0).sqrt()
        if scores is None or not len(scores) or float(scores.max()) <= 0.0:
            continue
        root, handler = group[0].dep.target.module, group[0].dep.handler
        order = torch.argsort(scores, stable=True)
        zeroed = int((scores < zero_below * scores.max()).sum())
        count = _removable(len(scores), zeroed)
        if count <= 0:
            continue
        channels = sorted(int(i) for i in order[:count])
        pruning = graph.get_pruning_group(root, handler, idxs=channels)
        if graph.check_pruning_group(pruning):
            pruning.prune()
            removed[names[root]] = count
    history = [(str(name), bool(out), [int(i) for i in idxs]) for name, out, idxs in graph.pruning_history()]
    return ZeroedPruning(model, history, removed)
