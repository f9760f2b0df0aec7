"""One split of the canonical image set as the model consumes it: images read from their files a batch at a
time (vision.data.streams), labels and paths in memory.

A split's images are never held whole: peak memory stays one batch however large the data grows, and an
image decodes to the same pixels on every read, so batches are identical run to run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import albumentations as A
import numpy as np
import torch
from torch.utils.data import Dataset

from core.fsutil import read_csv
from vision.data.streams import ImageFiles, Images, RawImages, positions, spread
from vision.data.tags import multi_hot

MEAN = (0.5, 0.5, 0.5)
STD = (0.5, 0.5, 0.5)


@dataclass(frozen=True)
class SplitData:
    images: Images
    """uint8, N x H x W x 3: read from the files on access (ImageFiles) or, in tests, an array."""
    labels: np.ndarray
    """int64 class indices into `classes`, or, for a multi-label task, float multi-hot rows (N x classes)."""
    paths: list[str]

    def take(self, indices: Sequence[int] | np.ndarray) -> SplitData:
        """The images at `indices` (positions, or a boolean mask), still unread when read from files."""
        chosen = positions(indices)
        images = self.images.subset(chosen) if isinstance(self.images, ImageFiles) else self.images[chosen]
        return SplitData(images, self.labels[chosen], [self.paths[int(i)] for i in chosen])

    def sample(self, count: int) -> SplitData:
        """At most `count` images spread over the whole split (streams.spread), never the first few classes."""
        return self.take(spread(len(self.labels), count))

    def decoded_once(self, folder: Path) -> SplitData:
        """The same split with its image files decoded once into raw pixels under `folder` (vision.data.streams
        RawImages), for reading every epoch; images already in memory stay as they are."""
        if not isinstance(self.images, ImageFiles):
            return self
        return SplitData(RawImages(self.images, folder), self.labels, self.paths)


@dataclass(frozen=True)
class Splits:
    """A project's train, validation and test splits, read from one split file; a split not asked for is
    empty."""

    train: SplitData
    val: SplitData
    test: SplitData


def load_split(ingest_dir: Path, split_csv: Path, split: str, classes: list[str], size_px: int) -> SplitData:
    return _split_of(read_csv(split_csv), ingest_dir, split, classes, size_px)


def load_splits(ingest_dir: Path, split_csv: Path, classes: list[str], size_px: int,
                names: tuple[str, ...] = ("train", "val", "test")) -> Splits:
    rows = read_csv(split_csv)
    loaded = {name: _split_of(rows if name in names else [], ingest_dir, name, classes, size_px)
              for name in ("train", "val", "test")}
    return Splits(**loaded)


def _split_of(rows: list[dict[str, str]], ingest_dir: Path, split: str, classes: list[str],
              size_px: int) -> SplitData:
    index = {name: i for i, name in enumerate(classes)}
    rows = [row for row in rows if row["split"] == split]
    images = ImageFiles([ingest_dir / row["path"] for row in rows], size_px)
    labels = np.array([index[row["label"]] for row in rows], dtype=np.int64)
    return SplitData(images, labels, [row["path"] for row in rows])


def load_tagged_split(ingest_dir: Path, tags_csv: Path, split_csv: Path, split: str, classes: list[str],
                      size_px: int) -> SplitData:
    """One split of a multi-label project: its images read on access, its multi-hot targets (vision.data.tags)
    in memory."""
    paths = [row["path"] for row in read_csv(split_csv) if row["split"] == split]
    return SplitData(ImageFiles([ingest_dir / path for path in paths], size_px),
                     multi_hot(paths, read_csv(tags_csv), classes), paths)


# Six parameters: load_splits' own and the tag table that replaces the manifest's labels.
def load_tagged_splits(ingest_dir: Path, tags_csv: Path, split_csv: Path, classes: list[str], size_px: int,
                       names: tuple[str, ...] = ("train", "val", "test")) -> Splits:
    """A multi-label project's splits (load_tagged_split); a split not asked for is empty."""
    empty = SplitData(np.zeros((0, size_px, size_px, 3), np.uint8), np.zeros((0, len(classes)), np.float32), [])
    return Splits(**{name: load_tagged_split(ingest_dir, tags_csv, split_csv, name, classes, size_px)
                     if name in names else empty for name in ("train", "val", "test")})


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 NHWC -> normalised float NCHW, exactly as the deployed model is fed."""
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float().div_(255.0)
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    return (x - mean) / std


class CleanImages(Dataset):
    """A split's images as the model's input tensors, read one at a time, without augmentation."""

    def __init__(self, data: SplitData):
        self.data = data

    def __len__(self) -> int:
        return len(self.data.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return to_tensor(self.data.images[index][None])[0], torch.tensor(self.data.labels[index])


class AugmentedImages(Dataset):
    """Training images through the spec's augmentations, drawn afresh each time an image is served.

    Albumentations works on uint8 HWC arrays, so images are kept in that form and normalised after
    augmenting; the pipeline's own seeded generator makes every epoch's draws repeatable.
    """

    def __init__(self, data: SplitData, pipeline: A.Compose):
        self.data, self.pipeline = data, pipeline

    def __len__(self) -> int:
        return len(self.data.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image = self.pipeline(image=self.data.images[index])["image"]
        return to_tensor(image[None])[0], torch.tensor(self.data.labels[index])
