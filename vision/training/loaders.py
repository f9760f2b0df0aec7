"""The data loaders fit trains from: shuffled or class-balanced batches, validation and BatchNorm-refresh
batches bounded by pixels, images decoded once per run, and frozen levels run once per image where
augmentation allows (vision.training.frozen_prefix)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, WeightedRandomSampler

from core.spec.training import AugmentSection, TrainSection
from vision.data.dataset import AugmentedImages, CleanImages, SplitData
from vision.data.streams import batch_for
from vision.tasks.classification import class_weights
from vision.training.augment import training_pipeline
from vision.training.frozen_prefix import StoredActivations, through_prefix

BN_REFRESH_MAX_STEPS = 100
"""Epochs with fewer optimizer steps than this refresh BatchNorm statistics before validating (see Classifier)."""


def training_loader(dataset: Dataset, labels: np.ndarray, training: TrainSection,
                    generator: torch.Generator, collate: Callable[[list], Any] | None = None) -> DataLoader:
    """Shuffled batches; with `balance: sampler`, each image drawn with probability inverse to its class's
    size (torch's WeightedRandomSampler, seeded), so every class fills about the same share of each epoch."""
    if training.balance != "sampler":
        return DataLoader(dataset, batch_size=training.batch_size, shuffle=True, generator=generator,
                          collate_fn=collate)
    per_image = class_weights(labels, int(labels.max(initial=0)) + 1)[torch.from_numpy(np.asarray(labels))]
    sampler = WeightedRandomSampler(per_image.double(), num_samples=len(labels), replacement=True,
                                    generator=generator)
    return DataLoader(dataset, batch_size=training.batch_size, sampler=sampler, collate_fn=collate)


@dataclass(frozen=True)
class Loaders:
    train: DataLoader
    val: DataLoader
    bn: DataLoader
    """The training split without augmentation, for the BatchNorm refresh."""
    cached: bool
    """Whether the training batches are stored activations of the frozen levels."""
    labels: np.ndarray
    """The training split's labels (for class-balanced loss weights)."""


def fit_loaders(train: SplitData, val: SplitData, training: TrainSection, seed: int, augment: AugmentSection | None,
             prefix: torch.nn.Module | None, folder: Path, label: str, progress: bool) -> Loaders:
    """Images read batch by batch; with a frozen prefix, validation and the unaugmented training split as the
    prefix's activations computed once (vision.training.frozen_prefix), augmented batches through the prefix in
    the loader."""
    size_px = int(train.images.shape[1])
    pipeline = training_pipeline(augment, size_px, seed) if augment else None
    generator = torch.Generator().manual_seed(seed)
    step = batch_for(size_px)  # images per validation / BatchNorm-refresh batch
    # images read every epoch are decoded once (validation's only without a prefix: with one, it is read once)
    if prefix is None or pipeline is not None:
        train = train.decoded_once(folder)
    if prefix is None:
        val = val.decoded_once(folder)
        clean: Dataset = CleanImages(train)
        loader = training_loader(AugmentedImages(train, pipeline) if pipeline else clean, train.labels, training,
                                 generator)
        return Loaders(loader, DataLoader(CleanImages(val), batch_size=step), DataLoader(clean, batch_size=step),
                        False, train.labels)
    refreshes = -(-len(train.labels) // training.batch_size) < BN_REFRESH_MAX_STEPS
    collate = through_prefix(prefix)
    if pipeline is None or refreshes:
        stored = StoredActivations(prefix, train, folder, label, progress)
        bn = DataLoader(stored, batch_size=step)
    else:  # never read: epochs this long do not refresh BatchNorm
        bn = DataLoader(CleanImages(train), batch_size=step, collate_fn=collate)
    loader = (training_loader(AugmentedImages(train, pipeline), train.labels, training, generator, collate)
              if pipeline else training_loader(stored, train.labels, training, generator))
    return Loaders(loader, DataLoader(StoredActivations(prefix, val, folder, label, progress), batch_size=step), bn,
                    pipeline is None, train.labels)
