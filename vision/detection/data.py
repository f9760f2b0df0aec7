"""One split of a detection data set as the detector consumes it: images letterboxed into the network input
(scaled to fit, aspect kept, padded right and bottom), boxes moved with them, read from their files one at a
time so memory stays one batch whatever the data set's size."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import albumentations as A
import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from core.fsutil import read_csv
from runtime.detections import Letterbox
from runtime.tiling import fitted
from vision.data.dataset import to_tensor
from vision.data.streams import spread


@dataclass(frozen=True)
class DetectionSplit:
    """Images (paths into the ingest folder) and their boxes in image pixels, xyxy, with class indices."""

    root: Path
    paths: list[str]
    boxes: list[np.ndarray]
    """Per image, float32 [N, 4]."""
    labels: list[np.ndarray]
    """Per image, int64 [N]."""

    def __len__(self) -> int:
        return len(self.paths)

    def take(self, indices: Sequence[int]) -> DetectionSplit:
        return DetectionSplit(self.root, [self.paths[i] for i in indices], [self.boxes[i] for i in indices],
                              [self.labels[i] for i in indices])

    def sample(self, count: int) -> DetectionSplit:
        """At most `count` images spread over the whole split (streams.spread)."""
        return self.take([int(i) for i in spread(len(self), count)])

    def instances(self) -> int:
        return int(sum(len(b) for b in self.labels))


def load_detection_split(ingest_dir: Path, boxes_csv: Path, split_csv: Path, split: str,
                         classes: Sequence[str]) -> DetectionSplit:
    """The images of `split` (in split-file order) with their boxes from the box table."""
    index = {name: i for i, name in enumerate(classes)}
    paths = [row["path"] for row in read_csv(split_csv) if row["split"] == split]
    per_image: dict[str, list[tuple[float, float, float, float, int]]] = {path: [] for path in paths}
    for row in read_csv(boxes_csv):
        if row["path"] in per_image and row["label"] in index:
            per_image[row["path"]].append((float(row["x1"]), float(row["y1"]), float(row["x2"]), float(row["y2"]),
                                           index[row["label"]]))
    boxes = [np.array([b[:4] for b in per_image[p]], dtype=np.float32).reshape(-1, 4) for p in paths]
    labels = [np.array([b[4] for b in per_image[p]], dtype=np.int64) for p in paths]
    return DetectionSplit(ingest_dir, paths, boxes, labels)


def read_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.array(image.convert("RGB"), dtype=np.uint8)


def letterbox(image: np.ndarray, input_wh: tuple[int, int]) -> tuple[np.ndarray, Letterbox]:
    """The image scaled to fit `input_wh` (bilinear), aspect kept, padded right and bottom with PAD_VALUE: the
    runtime's own fit, so training, evaluation and the server see the same pixels."""
    return fitted(image, input_wh)


def targets_tensor(boxes: np.ndarray, labels: np.ndarray) -> dict[str, torch.Tensor]:
    return {"boxes": torch.from_numpy(np.ascontiguousarray(boxes, dtype=np.float32)).reshape(-1, 4),
            "labels": torch.from_numpy(np.ascontiguousarray(labels, dtype=np.int64))}


class LetterboxedImages(Dataset):
    """(input tensor, target dict with boxes in input pixels, letterbox) per image; with an albumentations
    pipeline (bbox-aware, pascal_voc format), each read draws a fresh augmentation of the letterboxed image."""

    def __init__(self, data: DetectionSplit, input_wh: tuple[int, int], pipeline: A.Compose | None = None):
        self.data, self.input_wh, self.pipeline = data, input_wh, pipeline

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, torch.Tensor], Letterbox]:
        image, fit = letterbox(read_rgb(self.data.root / self.data.paths[index]), self.input_wh)
        return augmented(self.pipeline, image, fit.to_input(self.data.boxes[index]), self.data.labels[index], fit)


def augmented(pipeline: A.Compose | None, image: np.ndarray, boxes: np.ndarray, labels: np.ndarray, fit: Letterbox
              ) -> tuple[torch.Tensor, dict[str, torch.Tensor], Letterbox]:
    """A letterboxed view and its boxes (input pixels) through the augmentation pipeline, as the network reads
    them."""
    if pipeline is not None:
        out = pipeline(image=image, bboxes=boxes, labels=labels)
        image = out["image"]
        boxes = np.asarray(out["bboxes"], dtype=np.float32).reshape(-1, 4)
        labels = np.asarray(out["labels"], dtype=np.int64)
    return to_tensor(image[None])[0], targets_tensor(boxes, labels), fit


def collate(batch: list[tuple[torch.Tensor, dict[str, torch.Tensor], Letterbox]]
            ) -> tuple[torch.Tensor, list[dict[str, torch.Tensor]], list[Letterbox]]:
    images, targets, fits = zip(*batch, strict=True)
    return torch.stack(images), list(targets), list(fits)


def collate_for_training(batch: list[tuple[torch.Tensor, dict[str, torch.Tensor], Letterbox]]
                         ) -> tuple[torch.Tensor, list[dict[str, torch.Tensor]]]:
    """`collate` without the letterboxes: Lightning moves batches through its own traversal, which refuses
    frozen dataclasses, and training needs only input-pixel boxes."""
    images, targets, _ = collate(batch)
    return images, targets
