"""Transfer learning modes: freeze the first levels of a timm backbone, or train its head alone (a linear probe).

Levels are timm's `feature_info`: the stem, then each stage that halves the
resolution. Freezing the first N stops their gradients (no backward pass
through them, which is most of the cost on CPU) and fixes their BatchNorm
statistics (timm's FrozenBatchNorm2d); `thaw` turns them back into ordinary
modules so the saved model loads like any other. The probe computes each
image's pooled features once and trains the classifier on them: seconds
instead of minutes, and the starting point of a warm start.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from timm.utils.model import freeze, unfreeze
from torch.nn import functional as F

from core.spec.training import TrainSection
from vision.data.dataset import SplitData, to_tensor
from vision.data.streams import Images, batch_for, batches
from vision.tasks.classification import TASK as CLASSIFICATION

FEATURE_BATCH = 128


def levels(model: torch.nn.Module) -> list[str]:
    """The module ending each level of the backbone, first to last."""
    info = getattr(model, "feature_info", None)
    if not info:
        raise ValueError(f"{type(model).__name__} does not describe its levels (timm feature_info): it cannot be "
                         "frozen by level")
    return [level["module"] for level in info]


def frozen_modules(model: torch.nn.Module, count: int) -> list[str]:
    """The fewest module names that together cover everything up to the end of level `count` (1-based)."""
    names = levels(model)
    if not 0 <= count <= len(names):
        raise ValueError(f"freeze {count}: the backbone has {len(names)} levels")
    if count == 0:
        return []
    ordered = [name for name, _ in model.named_modules() if name]
    last = names[count - 1]
    end = max(i for i, name in enumerate(ordered) if name == last or name.startswith(last + "."))
    covered = set(ordered[:end + 1])

    def whole(name: str) -> bool:
        return name in covered and all(d in covered for d in ordered if d.startswith(name + "."))

    return [name for name in ordered[:end + 1]
            if whole(name) and not ("." in name and whole(name.rsplit(".", 1)[0]))]


def freeze_levels(model: torch.nn.Module, count: int) -> list[str]:
    """Freeze the first `count` levels in place; returns the frozen module names (for `thaw`)."""
    names = frozen_modules(model, count)
    if names:
        freeze(model, names)
    return names


def thaw(model: torch.nn.Module, names: list[str]) -> None:
    """Undo `freeze_levels`: trainable parameters and ordinary BatchNorm again, statistics kept."""
    if names:
        unfreeze(model, names)


@torch.no_grad()  # not inference_mode: the probe trains a layer on these tensors
def pooled_features(model: torch.nn.Module, images: Images) -> torch.Tensor:
    """The features the classifier reads (timm's pre-logits), in eval mode, batch by batch."""
    model.eval()
    chunks = [model.forward_head(model.forward_features(to_tensor(chunk)), pre_logits=True)
              for chunk in batches(images, batch_for(int(images.shape[1]), most=FEATURE_BATCH))]
    return torch.cat(chunks) if chunks else torch.zeros(0, int(model.num_features))


@dataclass(frozen=True)
class ProbeResult:
    history: list[dict[str, float]]
    kept_epoch: int


FeatureSource = Callable[[torch.Tensor], torch.Tensor]
"""Indices into the training split -> their features (cached, or computed through the frozen backbone)."""


def cached(features: torch.Tensor) -> FeatureSource:
    return lambda indices: features[indices]


def live(model: torch.nn.Module, images: np.ndarray) -> FeatureSource:
    """Features computed through the backbone for each batch: what the cache stands in for."""
    return lambda indices: pooled_features(model, images[indices.numpy()])


# Written by hand rather than with Lightning: a linear layer on a few thousand cached vectors trains in
# milliseconds per epoch, and Lightning's per-epoch overhead would be most of the cost.
def probe(model: torch.nn.Module, train: SplitData, val: SplitData, training: TrainSection, seed: int,
          source: FeatureSource | None = None) -> ProbeResult:
    """Train the model's classifier alone on the backbone's features of the (unaugmented) training split, keep
    the best epoch by `training.select_by`, and put those weights into `model`'s classifier."""
    head = model.get_classifier()
    features_of = source or cached(pooled_features(model, train.images))
    val_features, val_labels = pooled_features(model, val.images), torch.from_numpy(val.labels)
    labels = torch.from_numpy(train.labels)
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    optimizer = torch.optim.AdamW(head.parameters(), lr=training.optimizer.lr,
                                  weight_decay=training.optimizer.weight_decay)
    history: list[dict[str, float]] = []
    best, best_state = None, copy.deepcopy(head.state_dict())
    figure = training.selection()
    selection = CLASSIFICATION.selection[figure]
    for epoch in range(1, training.epochs + 1):
        head.train()
        order = torch.randperm(len(labels), generator=generator)
        total = 0.0
        for start in range(0, len(order), training.batch_size):
            batch = order[start:start + training.batch_size]
            loss = F.cross_entropy(head(features_of(batch)), labels[batch], label_smoothing=training.label_smoothing)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(batch)
        row = {"epoch": epoch, "train_loss": round(total / max(len(order), 1), 6),
               **_validate(head, val_features, val_labels), "lr": training.optimizer.lr}
        history.append(row)
        if selection.improves(row[figure], best):
            best, best_state = row[figure], copy.deepcopy(head.state_dict())
    head.load_state_dict(best_state)
    kept = next(r["epoch"] for r in history if r[figure] == best)
    return ProbeResult(history, int(kept))


@torch.no_grad()
def _validate(head: torch.nn.Module, features: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    from sklearn.metrics import f1_score

    head.eval()
    logits = head(features)
    predicted = logits.argmax(1)
    return {"val_loss": round(float(F.cross_entropy(logits, labels)), 6),
            "val_accuracy": round(float((predicted == labels).float().mean()), 6),
            "val_macro_f1": round(float(f1_score(labels.numpy(), predicted.numpy(), average="macro",
                                                 zero_division=0)), 6)}
