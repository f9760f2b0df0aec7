"""Image-level out-of-distribution scores for a detector: feature detectors on its pooled backbone features.

The logit detectors (msp, energy, max_logit) and ViM assume one softmax over classes per image; a detector has
a sigmoid per class per location, so the image-level detectors that apply are the feature ones: Mahalanobis
(one Gaussian over the training images' features: an image holds many classes, so there are no class means)
and KNN. Thresholds accept 95% of validation images, as for classifiers; serving abstains above them.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from vision.dependability.ood import FeatureDetector
from vision.dependability.ood_assessment import Fitted

DETECTION_OOD = ("mahalanobis", "knn")


def image_detectors(train: np.ndarray) -> dict[str, Callable[[], Fitted]]:
    """The detectors that apply to a detector's pooled features, fitted on the training images' `train` when
    called (one population: there is no class per image)."""

    def fitted(name: str) -> Callable[[], Fitted]:
        def fit() -> Fitted:
            detector = FeatureDetector(name).fit(train, np.zeros(len(train), np.int64))
            return Fitted(detector.score, detector.state())
        return fit

    return {name: fitted(name) for name in DETECTION_OOD}
