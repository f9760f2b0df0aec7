"""Detect, then classify: a detector's boxes cropped from the image and named by a classifier of the fine classes.

numpy and PIL only, so the model server and the pipeline's evaluation of a cascade run this one function and give
the same answer. A crop is the box grown by the crops source's padding (the classifier learned on such crops),
clipped to the image. The detector abstaining on an image (out of distribution) leaves it without boxes; the
classifier abstaining on a crop leaves that box without a fine class, its coarse class still reported.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from runtime.windows import crop_window

if TYPE_CHECKING:
    from runtime.artifact import Artifact, DetectionRequest


@dataclass(frozen=True)
class CascadeBox:
    box: tuple[float, float, float, float]
    """xyxy in the image's pixels."""
    coarse: str
    coarse_score: float
    """The detector's calibrated score."""
    fine: str | None
    """The classifier's class; None where it abstained on the crop."""
    fine_score: float
    """The classifier's calibrated probability of its top class."""

    @property
    def score(self) -> float:
        """How sure the pair is of this box and its fine class: both must be right."""
        return self.coarse_score * self.fine_score


@dataclass(frozen=True)
class CascadeAnswer:
    boxes: tuple[CascadeBox, ...]
    abstained: bool
    """The detector abstained on the image: no boxes."""


def cascade(detector: Artifact, classifier: Artifact, images: list[Image.Image], padding: float,
            request: DetectionRequest | None = None) -> list[CascadeAnswer]:
    """Each RGB image's boxes with their coarse and fine classes, best detection first."""
    tensor = detector.normalise(np.stack([detector.fit(image) for image in images]))
    full = [np.asarray(image, dtype=np.uint8) for image in images] if detector.tiled else None
    found = detector.detect(tensor, [image.size for image in images], request, images=full)
    answers = []
    for image, detections, abstained in zip(images, found.detections, found.abstained, strict=True):
        boxes = [tuple(float(v) for v in box) for box in detections.boxes]
        crops = [image.crop(crop_window(box, image.width, image.height, padding)) for box in boxes]
        named = classifier.predict(classifier.normalise(np.stack([classifier.fit(c) for c in crops]))) if crops \
            else None
        answers.append(CascadeAnswer(tuple(
            CascadeBox(box, detector.classes[int(label)], float(score), named.labels[i],  # type: ignore[union-attr]
                       float(named.probabilities[i].max()))  # type: ignore[union-attr]
            for i, (box, label, score) in enumerate(zip(boxes, detections.labels, detections.scores, strict=True))),
            bool(abstained)))
    return answers
