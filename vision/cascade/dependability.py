"""How the served pair behaves where its test images do not look, measured end to end through runtime.cascade.

- corruptions of the whole image (fog, rain, blur, noise, ... as the single-model sweeps apply them), the pair's
  mAP50-95 over the fine classes under each against its clean figure;
- images of nothing it knows (textures, noise, photographs): the share on which the served pair (both models
  abstaining as they do in the server) still answers with a named box, and how well the detector's image score
  tells them from the test images;
- calibration of the combined score (detector x classifier) against whether the box and its fine class are right:
  D-ECE on the test images.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image
from sklearn.metrics import roc_auc_score

from runtime.cascade import CascadeAnswer, cascade
from vision.cascade.evaluation import Change, TruthImage, fine_detections
from vision.dependability.ood_sets import noise_images, photo_crops
from vision.detection.calibration import detection_ece, scored
from vision.detection.dependability import GEOMETRIC, texture_images
from vision.training.augment import apply, corruption

FAR_SET_IMAGES = 32
GATED_SETS = ("textures", "noise")
"""Far sets the gate reads. Photographs are reported beside them: a detector's own data may be built on them (the
embedded digits-on-photos are), so a photograph is not far from everything a detector knows."""


def corrupting(name: str, severity: int, seed: int) -> Change:
    """`name` at `severity` applied to a whole image; the draw depends on the seed and the image's index only, so
    every rerun corrupts alike. Pixel-only corruptions: every box stays where it is."""
    if name in GEOMETRIC:
        raise ValueError(f"{name} moves pixels, so boxes would move: not a detection corruption")

    def change(image: Image.Image, index: int) -> Image.Image:
        pipeline = corruption(name, severity, max(image.size), seed + index)
        return Image.fromarray(apply(pipeline, np.asarray(image.convert("RGB"), dtype=np.uint8)))

    return change


@dataclass(frozen=True)
class SweepRow:
    corruption: str
    severity: int
    map: float
    map50: float


def sweep(run: Callable[[Change], list[CascadeAnswer]], images: Sequence[TruthImage], classes: Sequence[str],
          corruptions: Sequence[str], severities: Sequence[int], seed: int, score: Callable[..., dict[str, Any]],
          on_row: Callable[[SweepRow], None] | None = None) -> list[SweepRow]:
    """The pair's mAP50-95 and mAP50 under every corruption x severity, against the unchanged boxes."""
    rows = []
    for name in corruptions:
        for severity in severities:
            figures = score(fine_detections(run(corrupting(name, severity, seed)), classes), images, classes)
            rows.append(SweepRow(name, severity, round(max(figures["map"], 0.0), 6),
                                 round(max(figures["map50"], 0.0), 6)))
            if on_row:
                on_row(rows[-1])
    return rows


def families(clean_map: float, rows: Sequence[SweepRow]) -> dict[str, dict[str, float]]:
    """Each corruption's mean mAP50-95 over its severities and its drop from the clean figure."""
    names = dict.fromkeys(row.corruption for row in rows)
    out = {}
    for name in names:
        mean = float(np.mean([row.map for row in rows if row.corruption == name]))
        out[name] = {"mean_map": round(mean, 6), "drop": round(clean_map - mean, 6)}
    return out


def far_sets(size_px: int, seed: int, count: int = FAR_SET_IMAGES) -> dict[str, list[Image.Image]]:
    """Images of nothing a digit, car or defect detector knows, at the test images' size."""
    made = {"textures": texture_images(count, size_px, seed), "noise": noise_images(count, size_px, seed + 1),
            "photos": photo_crops(count, size_px, seed + 2)}
    return {name: [Image.fromarray(np.asarray(image, dtype=np.uint8)) for image in images]
            for name, images in made.items()}


def answered(answers: Sequence[CascadeAnswer]) -> float:
    """Share of images the served pair answers with at least one named box."""
    if not answers:
        return 0.0
    return float(np.mean([any(box.fine is not None for box in a.boxes) and not a.abstained for a in answers]))


def ood_figures(detector: Any, classifier: Any, padding: float, test: list[CascadeAnswer],
                sets: dict[str, list[Image.Image]]) -> dict[str, Any]:
    """Per far set: the share the served pair answers, and the AUROC of the detector's image score (test images
    against the set); the worst gated share is what the gate reads."""
    test_scores = np.asarray([a.ood_score for a in test])
    figures: dict[str, Any] = {"test_answered_fraction": round(answered(test), 6), "sets": {}}
    for name, images in sets.items():
        found = [a for start in range(0, len(images), 16)
                 for a in cascade(detector, classifier, images[start:start + 16], padding)]
        scores = np.asarray([a.ood_score for a in found])
        truth = np.r_[np.zeros(len(test_scores)), np.ones(len(scores))]
        auroc = float(roc_auc_score(truth, np.r_[test_scores, scores])) if len(test_scores) else 0.5
        figures["sets"][name] = {"answered_fraction": round(answered(found), 6), "detector_auroc": round(auroc, 6),
                                 "gated": name in GATED_SETS}
    gated = [v["answered_fraction"] for n, v in figures["sets"].items() if v["gated"]]
    figures["worst_answered_fraction"] = max(gated) if gated else 0.0
    return figures


def combined_dece(answers: Sequence[CascadeAnswer], images: Sequence[TruthImage], classes: Sequence[str]
                  ) -> dict[str, float]:
    """D-ECE of the product score against a box being right in place and fine class (IoU 0.5)."""
    measured = scored(fine_detections(answers, classes), [i.boxes for i in images], [i.fine for i in images])
    return {"dece": round(detection_ece(measured.confidences, measured.correct), 6),
            "detections": len(measured.confidences)}
