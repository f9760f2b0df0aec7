"""Detect, then classify: a detector's boxes cropped from the image and named by a classifier of the fine classes.

numpy and PIL only, so the model server and the pipeline's evaluation of a cascade run this one function and give
the same answer. A crop is the box grown by the crops source's padding (the classifier learned on such crops),
clipped to the image. The detector abstaining on an image (out of distribution) leaves it without boxes; the
classifier abstaining on a crop leaves that box without a fine class, its coarse class still reported.

A cascade's release holds `detector/` and `classifier/` (each model's own bundle) and `cascade.json` (the crop
padding, the fine classes, both digests): `CascadeArtifact` loads it as one served model. One process holding both
sessions answers a request with the image decoded once and no network hop between the models; a KServe
InferenceGraph of two predictors would send every crop over HTTP to the second (and a graph node cannot crop).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from runtime.windows import crop_window

if TYPE_CHECKING:
    from runtime.artifact import Artifact, DetectionPrediction, DetectionRequest
    from runtime.images import PixelLimits

SETTINGS_FILE = "cascade.json"
"""The file of a cascade's release that joins its two bundles."""
MEMBERS = ("detector", "classifier")
"""The release's folder for each model (its project's own release, unchanged)."""


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
    ood_score: float = 0.0
    """The detector's image-level OOD score."""


@dataclass(frozen=True)
class CascadePrediction:
    """A request's answers, with the per-image arrays every served prediction has."""

    answers: list[CascadeAnswer]
    ood_scores: np.ndarray
    abstained: np.ndarray


def cascade(detector: Artifact, classifier: Artifact, images: list[Image.Image], padding: float,
            request: DetectionRequest | None = None) -> list[CascadeAnswer]:
    """Each RGB image's boxes with their coarse and fine classes, best detection first."""
    tensor = detector.normalise(np.stack([detector.fit(image) for image in images]))
    full = [np.asarray(image, dtype=np.uint8) for image in images] if detector.tiled else None
    found = detector.detect(tensor, [image.size for image in images], request, images=full)
    return named(detector, classifier, found, images, padding)


def named(detector: Artifact, classifier: Artifact, found: DetectionPrediction, images: list[Image.Image],
          padding: float) -> list[CascadeAnswer]:
    """The detector's boxes on each image, each cropped with `padding` and named by the classifier."""
    answers = []
    for image, detections, abstained, ood in zip(images, found.detections, found.abstained, found.ood_scores,
                                                 strict=True):
        boxes = [tuple(float(v) for v in box) for box in detections.boxes]
        crops = [image.crop(crop_window(box, image.width, image.height, padding)) for box in boxes]
        fine = classifier.predict(classifier.normalise(np.stack([classifier.fit(c) for c in crops]))) if crops \
            else None
        answers.append(CascadeAnswer(tuple(
            CascadeBox(box, detector.classes[int(label)], float(score), fine.labels[i],  # type: ignore[union-attr]
                       float(fine.probabilities[i].max()))  # type: ignore[union-attr]
            for i, (box, label, score) in enumerate(zip(boxes, detections.labels, detections.scores, strict=True))),
            bool(abstained), float(ood)))
    return answers


def is_cascade(folders: list[Path]) -> bool:
    """Whether the bundle in `folders` is a cascade's release."""
    return any((folder / SETTINGS_FILE).is_file() for folder in folders)


@dataclass
class CascadeArtifact:
    """A cascade's release as one served model: its requests are the detector's (images, limits, detection
    parameters), its answers boxes with both classes."""

    detector: Artifact
    classifier: Artifact
    padding: float
    classes: list[str]
    """The fine classes (the classifier's)."""
    version: str
    """`sha256-<first 12 hex digits>` of cascade.json (which names both models' digests)."""
    task: str = "cascade"

    @classmethod
    def load(cls, folders: list[Path], threads: int = 1, abstain_on_ood: bool = True,
             limits: PixelLimits | None = None) -> CascadeArtifact:
        from runtime.artifact import Artifact

        folder = next(f for f in folders if (f / SETTINGS_FILE).is_file())
        detector, classifier = (Artifact.load([folder / name], threads, abstain_on_ood, limits) for name in MEMBERS)
        return cls.joined((folder / SETTINGS_FILE).read_bytes(), detector, classifier)

    @classmethod
    def joined(cls, settings_file: bytes, detector: Artifact, classifier: Artifact) -> CascadeArtifact:
        """The pair `cascade.json`'s bytes join, from models loaded however the caller needs them (the data
        loop's round keeps the classifier's guess on crops it would abstain on)."""
        settings: dict[str, Any] = json.loads(settings_file)
        return cls(detector, classifier, float(settings["padding"]), list(settings["classes"]),
                   "sha256-" + hashlib.sha256(settings_file).hexdigest()[:12])

    def __getattr__(self, name: str) -> Any:
        """What a request needs of the model (decode, fit, normalise, input size, limits, detection settings) is
        the detector's: the classifier sees only the crops."""
        if name in ("decode", "fit", "normalise", "input_hw", "limits", "tiled", "detection", "default_request"):
            return getattr(self.detector, name)
        raise AttributeError(name)

    def answer(self, tensor: np.ndarray, sizes: list[tuple[int, int]], full: list[np.ndarray],
               request: DetectionRequest | None) -> CascadePrediction:
        """A request's images (normalised for the detector, and at full size to crop from) answered."""
        found = self.detector.detect(tensor, sizes, request, images=full if self.detector.tiled else None)
        answers = named(self.detector, self.classifier, found, [Image.fromarray(image) for image in full],
                        self.padding)
        return CascadePrediction(answers, found.ood_scores, found.abstained)
