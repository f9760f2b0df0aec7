"""Figures the detection stages leave for reviewers: what the box-aware augmentations do to images and boxes,
and the test images the detector got most wrong, with true and predicted boxes."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from core.spec.detection import DetectionSection
from core.spec.training import AugmentSection
from runtime.detections import Detections
from vision.detection.augment import box_params, detection_pipeline
from vision.detection.data import DetectionSplit, letterbox, read_rgb
from vision.detection.model import DetectorConfig
from vision.plots import draw_boxes, image_grid
from vision.training.augment import CORRUPTIONS, GEOMETRIC_AND_COLOUR, enabled

PREVIEW_COLUMNS = 4
TRUTH, PREDICTED = (40, 220, 60), (255, 70, 70)


def _examples(train: DetectionSplit) -> list[int]:
    """The first PREVIEW_COLUMNS training images with boxes (negatives show nothing to move)."""
    return [i for i in range(len(train)) if len(train.labels[i])][:PREVIEW_COLUMNS]


def augmentation_preview(train: DetectionSplit, augment: AugmentSection | None, config: DetectorConfig,
                         detection: DetectionSection, seed: int, path: Path) -> None:
    """One row per augmentation the spec turns on (always applied), and one as training draws them, each image
    with its boxes after the transform: boxes must stay on their objects."""
    chosen = _examples(train)
    views = [letterbox(read_rgb(train.root / train.paths[i]), config.input_wh) for i in chosen]
    samples = [(image, fit.to_input(train.boxes[i]), train.labels[i]) for (image, fit), i in zip(views, chosen,
                                                                                                 strict=True)]
    rows = [("original", [_drawn(*s, config) for s in samples], [])]
    for name in enabled(augment) if augment is not None else []:
        if name in GEOMETRIC_AND_COLOUR:
            pipeline = detection_pipeline(AugmentSection.model_validate({name: 1.0}), config.input_wh,
                                          detection.min_visibility, seed)
        else:
            import albumentations as A

            pipeline = A.Compose([CORRUPTIONS[name](augment.severity, min(config.input_wh))],
                                 bbox_params=box_params(detection.min_visibility), seed=seed)
        rows.append((f"{name}\np={getattr(augment, name):g}", [_augmented(pipeline, s, config) for s in samples], []))
    mixed = detection_pipeline(augment, config.input_wh, detection.min_visibility, seed)
    if mixed is not None:
        rows.append(("as trained", [_augmented(mixed, s, config) for s in samples], []))
    title = ("Training augmentations with their boxes (rows always applied; last row as drawn)" if mixed else
             "No augmentations in the spec: the detector trains on the images as they are")
    image_grid(rows, path, title, cell_in=2.0)


def _drawn(image: np.ndarray, boxes: np.ndarray, labels: np.ndarray, config: DetectorConfig) -> np.ndarray:
    return draw_boxes(image, [(boxes, [config.classes[int(c)] for c in labels], TRUTH)])


def _augmented(pipeline: object, sample: tuple[np.ndarray, np.ndarray, np.ndarray], config: DetectorConfig
               ) -> np.ndarray:
    image, boxes, labels = sample
    out = pipeline(image=image, bboxes=boxes, labels=labels)  # type: ignore[operator]
    return _drawn(out["image"], np.asarray(out["bboxes"]).reshape(-1, 4), np.asarray(out["labels"]), config)


def worst_gallery(data: DetectionSplit, found: Sequence[Detections], ranking: Sequence[int], classes: Sequence[str],
                  score_threshold: float, path: Path, title: str, columns: int = 4) -> None:
    """The images at `ranking` (worst first) with true boxes (green) and detections above `score_threshold`
    (red, with class and score)."""
    tiles, captions = [], []
    for i in ranking:
        keep = found[i].scores >= score_threshold
        predicted = [f"{classes[int(c)]}: {s:.2f}" for c, s in zip(found[i].labels[keep], found[i].scores[keep],
                                                                   strict=True)]
        tiles.append(draw_boxes(read_rgb(data.root / data.paths[i]), [
            (data.boxes[i], [classes[int(c)] for c in data.labels[i]], TRUTH),
            (found[i].boxes[keep], predicted, PREDICTED)]))
        captions.append(Path(data.paths[i]).name)
    rows = [("", tiles[r:r + columns], captions[r:r + columns]) for r in range(0, len(tiles), columns)]
    image_grid(rows or [("", [], [])], path, title, cell_in=2.4)
