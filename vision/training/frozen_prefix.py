"""Frozen levels run once per image: their activations stored on disk and read back every epoch.

With the first levels frozen (fixed weights, FrozenBatchNorm2d, eval mode) an image's activations at the end of
those levels never change. Where no augmentation changes the image, they are computed once and the rest of the
network trains on them: each training step, validation pass and BatchNorm refresh then skips the frozen levels'
forward, which at a few levels frozen is most of what a step still costs once their backward is gone. Where
augmentation draws a new image each epoch, the frozen levels still run for every batch, but in the loader and
without autograd.

The split is generic over timm's sequential backbones: the frozen modules, in order, form the prefix, and the
model keeps identity modules in their place. Architectures whose forward is not that sequence (a frozen level
feeding a later one directly) are detected by comparing outputs before training, and then train as before.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, default_collate

from core.progress import Progress
from vision.data.dataset import SplitData, to_tensor
from vision.data.streams import RowFile, batch_for, batches

CACHE_BATCH = 64
CHECK_IMAGES = 4
CHECK_TOLERANCE = 1e-4
"""Largest difference between the split model's logits and the whole model's, relative to their scale."""


def _parent(model: torch.nn.Module, name: str) -> tuple[torch.nn.Module, str]:
    head, _, leaf = name.rpartition(".")
    return (model.get_submodule(head) if head else model), leaf


def split_off(model: torch.nn.Module, names: list[str], sample: np.ndarray) -> torch.nn.Sequential | None:
    """Take the modules `names` (in forward order) out of `model` as a Sequential prefix, leaving identities,
    so that `model(prefix(x)) == model_before(x)`; None (model untouched) when that does not hold on `sample`."""
    if not names or not len(sample):
        return None
    modules = [model.get_submodule(name) for name in names]
    prefix = torch.nn.Sequential(*modules).eval()
    x = to_tensor(sample)
    mode = model.training
    with torch.no_grad():
        expected = model.eval()(x)
        _swap(model, names, [torch.nn.Identity() for _ in names])
        got = model(prefix(x))
    model.train(mode)
    scale = float(expected.abs().max()) or 1.0
    if float((got - expected).abs().max()) > CHECK_TOLERANCE * max(scale, 1.0):
        _swap(model, names, modules)
        return None
    return prefix


def put_back(model: torch.nn.Module, names: list[str], prefix: torch.nn.Sequential) -> None:
    """Undo `split_off`: the prefix's modules return to their places in `model`."""
    _swap(model, names, list(prefix))


def _swap(model: torch.nn.Module, names: list[str], modules: list[torch.nn.Module]) -> None:
    for name, module in zip(names, modules, strict=True):
        parent, leaf = _parent(model, name)
        setattr(parent, leaf, module)


class StoredActivations(Dataset):
    """A split's activations at the end of the frozen prefix, computed once and kept in a file (read back one
    row at a time, so memory stays one batch however large the split)."""

    def __init__(self, prefix: torch.nn.Module, data: SplitData, folder: Path, label: str = "frozen levels",
                 progress: bool = True):
        self.labels = data.labels
        self._rows = RowFile(folder, np.float32)
        with torch.inference_mode(), Progress(f"{label}: activations computed once", len(data.labels),
                                              unit="image", enabled=progress) as shown:
            for chunk in batches(data.images, batch_for(int(data.images.shape[1]), most=CACHE_BATCH)):
                self._rows.append(prefix(to_tensor(chunk).contiguous(memory_format=torch.channels_last))
                                  .contiguous().numpy())
                shown.update(len(chunk))

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.from_numpy(self._rows.read(int(index), 1)[0]), torch.tensor(self.labels[index])


def through_prefix(prefix: torch.nn.Module) -> Callable[[list], tuple[torch.Tensor, torch.Tensor]]:
    """A collate function that runs a batch of (augmented) images through the frozen prefix without autograd."""
    def collate(items: list) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = default_collate(items)
        with torch.no_grad():
            return prefix(x.contiguous(memory_format=torch.channels_last)), y

    return collate


@contextmanager
def frozen_prefix(model: torch.nn.Module, names: list[str], sample: np.ndarray) -> Iterator[
        torch.nn.Sequential | None]:
    """`model` with its frozen modules split off for the duration (the prefix, or None where the split does not
    reproduce the model); always whole again afterwards."""
    prefix = split_off(model, names, sample)
    try:
        yield prefix
    finally:
        if prefix is not None:
            put_back(model, names, prefix)
