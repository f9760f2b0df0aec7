"""The cascade on its detector's test images, scored as one detector of the fine classes.

Each test box's truth is its annotation category (the fine class the classifier's crops source labels it with);
a detection's fine class is the classifier's answer on its crop and its score the product of both models'
calibrated scores (both must be right). A box the classifier abstained on has no fine class and cannot count as
found. The same images run through a single-stage baseline detector of the fine classes when one is named: the
comparison a cascade has to win. The models run through runtime.cascade, the function the server answers with.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from PIL import Image

from core.fsutil import read_csv
from runtime.cascade import CascadeAnswer, cascade
from runtime.detections import Detections
from vision.data.ingested import ingested_images
from vision.detection.metrics import mean_average_precision

BATCH_IMAGES = 16
"""Images per detector batch: bounded memory on any test set."""


class SplitMismatch(ValueError):
    """The baseline was trained or tuned on some of the cascade's test images: comparing them would flatter it."""


class Decoder(Protocol):
    def decode(self, data: bytes) -> Image.Image: ...


@dataclass(frozen=True)
class TruthImage:
    path: str
    """Relative to the detector's ingest folder."""
    boxes: np.ndarray
    """N x 4 xyxy pixels."""
    fine: np.ndarray
    """Each box's fine class: an index into the cascade's classes."""
    coarse: np.ndarray
    """Each box's class in the detector: an index into the detector's classes."""


def held_out_images(ingest: Path, split_table: Path, classes: Sequence[str], coarse_classes: Sequence[str]
                ) -> list[TruthImage]:
    """The detector's test images with every box's fine and coarse class; a box whose category the cascade does
    not name is an error (it could never be found by its fine class, and leaving it out would flatter the pair)."""
    fine_index = {name: i for i, name in enumerate(classes)}
    coarse_index = {name: i for i, name in enumerate(coarse_classes)}
    images = [image for image in ingested_images(ingest, split_table) if image.split == "test"]
    unknown = sorted({box.category for image in images for box in image.boxes if box.category not in fine_index})
    if unknown:
        raise ValueError(f"the detector's test boxes have categories the cascade's classes do not name: {unknown}; "
                         "name them in classes (and in the classifier's)")
    return [TruthImage(image.path, np.asarray([[b.x1, b.y1, b.x2, b.y2] for b in image.boxes],
                                              np.float32).reshape(-1, 4),
                       np.asarray([fine_index[b.category] for b in image.boxes], np.int64),
                       np.asarray([coarse_index.get(b.label, -1) for b in image.boxes], np.int64))
            for image in images]


def baseline_agrees(images: Sequence[TruthImage], baseline_split: Path) -> None:
    """Raise SplitMismatch unless every test image of the cascade is a test image of the baseline too (by the
    image's path in its ingest, which is its content address)."""
    split_of = {row["path"]: row["split"] for row in read_csv(baseline_split)}
    leaked = [image.path for image in images if split_of.get(image.path) != "test"]
    if leaked:
        raise SplitMismatch(f"{len(leaked)} of the cascade's {len(images)} test images are not test images of the "
                            f"baseline (e.g. {leaked[0]}: {split_of.get(leaked[0], 'absent')}); give the detector a "
                            "`project` source reading the baseline, so both keep one split")


Change = Callable[[Image.Image, int], Image.Image]
"""What happens to an image (and its index among the images) before the models see it: a corruption."""


def run_cascade(detector: Any, classifier: Any, folder: Path, images: Sequence[TruthImage], padding: float,
                change: Change | None = None) -> list[CascadeAnswer]:
    """The cascade's answer on every image, decoded as the server decodes a request's bytes (then changed)."""
    answers: list[CascadeAnswer] = []
    for batch in _batches(detector, folder, images, change):
        answers.extend(cascade(detector, classifier, batch, padding))
    return answers


def run_detector(detector: Any, folder: Path, images: Sequence[TruthImage]) -> list[Detections]:
    """A single-stage detector's detections on every image, as the server answers them."""
    found: list[Detections] = []
    for batch in _batches(detector, folder, images):
        tensor = detector.normalise(np.stack([detector.fit(image) for image in batch]))
        full = [np.asarray(image, dtype=np.uint8) for image in batch] if detector.tiled else None
        found.extend(detector.detect(tensor, [image.size for image in batch], images=full).detections)
    return found


def _batches(decoder: Decoder, folder: Path, images: Sequence[TruthImage], change: Change | None = None
             ) -> Iterator[list[Image.Image]]:
    for start in range(0, len(images), BATCH_IMAGES):
        decoded = [decoder.decode((folder / image.path).read_bytes()) for image in images[start:start + BATCH_IMAGES]]
        yield decoded if change is None else [change(image, start + i) for i, image in enumerate(decoded)]


def fine_detections(answers: Sequence[CascadeAnswer], classes: Sequence[str]) -> list[Detections]:
    """The cascade's answers as detections of the fine classes (boxes the classifier named), best first."""
    index = {name: i for i, name in enumerate(classes)}
    found = []
    for answer in answers:
        named = sorted((box for box in answer.boxes if box.fine is not None), key=lambda box: -box.score)
        found.append(Detections(np.asarray([box.box for box in named], np.float32).reshape(-1, 4),
                                np.asarray([box.score for box in named], np.float32),
                                np.asarray([index[box.fine] for box in named], np.int64)))
    return found


def coarse_detections(answers: Sequence[CascadeAnswer], coarse_classes: Sequence[str]) -> list[Detections]:
    """The detector's own boxes and scores (what the cascade starts from), for its stage of the figures."""
    index = {name: i for i, name in enumerate(coarse_classes)}
    return [Detections(np.asarray([box.box for box in answer.boxes], np.float32).reshape(-1, 4),
                       np.asarray([box.coarse_score for box in answer.boxes], np.float32),
                       np.asarray([index[box.coarse] for box in answer.boxes], np.int64)) for answer in answers]


def renamed(found: Sequence[Detections], own: Sequence[str], classes: Sequence[str]) -> list[Detections]:
    """Detections labelled by `own` class names relabelled by `classes` (the baseline's order may differ)."""
    order = np.asarray([list(classes).index(name) for name in own], np.int64)
    return [Detections(f.boxes, f.scores, order[f.labels]) for f in found]


def figures(found: Sequence[Detections], images: Sequence[TruthImage], classes: Sequence[str], truth: str = "fine"
            ) -> dict[str, Any]:
    """COCO mAP50-95, mAP50, mAP75 and AP per class of `found` against the images' `fine` or `coarse` boxes."""
    raw = mean_average_precision(found, [image.boxes for image in images],
                                 [getattr(image, truth) for image in images], classes)
    return {key: raw[key] for key in ("map", "map50", "map75", "per_class_ap")}


def answers_table(images: Sequence[TruthImage], answers: Sequence[CascadeAnswer]) -> list[dict[str, Any]]:
    """Each test image's answer as the server gives it (boxes rounded to 0.01 px, scores to 1e-6): what a served
    cascade must return for the same image."""
    return [{"path": image.path, "abstained": answer.abstained,
             "boxes": [{"box": [round(float(v), 2) for v in box.box], "coarse": box.coarse,
                        "coarse_score": round(box.coarse_score, 6), "fine": box.fine,
                        "fine_score": round(box.fine_score, 6)} for box in answer.boxes]}
            for image, answer in zip(images, answers, strict=True)]
