"""Image-level out-of-distribution scores for a detector: feature detectors on its pooled backbone features.

The logit detectors (msp, energy, max_logit) and ViM assume one softmax over classes per image; a detector has
a sigmoid per class per location, so the image-level detectors that apply are the feature ones: Mahalanobis
(one Gaussian over the training images' features: an image holds many classes, so there are no class means)
and KNN. Thresholds accept 95% of validation images, as for classifiers; serving abstains above them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from vision.dependability.ood import FeatureDetector, OodMetrics, ood_metrics, threshold_at_tpr
from vision.dependability.ood_choice import DetectorChoice, choose_detector

DETECTION_OOD = ("mahalanobis", "knn")
TPR = 0.95


@dataclass
class ImageOod:
    """Every detector on every set, and the one serving abstains with."""

    detector: str
    threshold: float
    table: dict[str, dict[str, OodMetrics]]
    scores: dict[str, np.ndarray]
    """The chosen detector's scores: `test` and each set."""
    state: dict[str, np.ndarray]
    choice: DetectorChoice | None = None
    kinds: dict[str, str] = field(default_factory=dict)


# Seven parameters: features of each split and set, the sets' kinds and the spec's choice.
def assess_image_ood(train: np.ndarray, val: np.ndarray, test: np.ndarray, sets: dict[str, np.ndarray],
                     kinds: dict[str, str], chosen: str, selection: dict[str, np.ndarray]) -> ImageOod:
    """Fit each detector on `train` features, threshold it on `val`, measure it on `sets` against `test`;
    `chosen` auto picks on `selection` (validation-only sets whose kinds `kinds` names too)."""
    table, picked, fitted = {}, {}, {}
    for name in DETECTION_OOD:
        detector = FeatureDetector(name).fit(train, np.zeros(len(train), np.int64))
        val_scores, test_scores = detector.score(val), detector.score(test)
        threshold = round(threshold_at_tpr(val_scores, TPR), 6)
        per_set = {set_name: detector.score(features) for set_name, features in sets.items()}
        table[name] = {set_name: ood_metrics(test_scores, scores, TPR, threshold)
                       for set_name, scores in per_set.items()}
        picked[name] = {set_name: ood_metrics(val_scores, detector.score(features), TPR, threshold)
                        for set_name, features in selection.items()}
        fitted[name] = (threshold, {"test": test_scores, **per_set}, detector.state())
    choice = choose_detector(picked, kinds) if chosen == "auto" else None
    name = choice.detector if choice else chosen
    threshold, scores, state = fitted[name]
    return ImageOod(name, threshold, table, scores, state, choice, kinds)


def summary(result: ImageOod) -> dict[str, object]:
    """The chosen detector's figures: worst far set (AUROC, FPR95, accepted share) and the near sets' AUROC."""
    mine = result.table[result.detector]
    far = [m for s, m in mine.items() if result.kinds[s] == "far"]
    near = [m for s, m in mine.items() if result.kinds[s] == "near"]
    return {"detector": result.detector, "threshold": result.threshold, "tpr": TPR,
            "far_auroc": min(m.auroc for m in far), "far_fpr_at_95_tpr": max(m.fpr_at_95_tpr for m in far),
            "far_accepted_fraction": max(m.accepted_fraction for m in far),
            "near_auroc": min((m.auroc for m in near), default=1.0),
            "sets": {s: {"auroc": m.auroc, "accepted_fraction": m.accepted_fraction} for s, m in mine.items()},
            "inverted_sets": sorted(s for s, m in mine.items() if m.inverted)}
