"""The OOD detectors of a model with a classification head (a classifier's softmax, a tagger's sigmoids): the
logit detectors, the feature detectors fitted on the training split's pooled features (ViM also reads the head),
and, with the data loop's ensemble, the members' disagreement, scored by the server's own formula."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from runtime.ood import ood_score
from vision.dependability.ood import DETECTORS, LOGIT_DETECTORS, FeatureDetector, logit_scores
from vision.dependability.ood_assessment import Fitted


@dataclass(frozen=True)
class Outputs:
    """The deployable model's outputs on one population."""

    logits: np.ndarray
    features: np.ndarray
    members: np.ndarray | None = None
    """The data loop's ensemble members' logits (M x N x C) when the project has an ensemble."""


def head_detectors(train: Outputs, train_labels: np.ndarray, head: tuple[np.ndarray, np.ndarray],
                   member_state: dict[str, np.ndarray] | None = None) -> dict[str, Callable[[], Fitted]]:
    """Every detector, fitted when called: `head` is the classifier's (weight, bias); `train_labels` the
    training images' classes (all zeros for a tagger, whose features are one population); `member_state` the
    ensemble's ONNX files as bytes, what serving loads, when the project has an ensemble."""

    def logits(name: str) -> Callable[[], Fitted]:
        return lambda: Fitted(lambda out: logit_scores(name, out.logits), {})

    def features(name: str) -> Callable[[], Fitted]:
        def fit() -> Fitted:
            detector = FeatureDetector(name, weight=head[0], bias=head[1]).fit(train.features, train_labels)
            return Fitted(lambda out: detector.score(out.features), detector.state())
        return fit

    fits = {name: logits(name) if name in LOGIT_DETECTORS else features(name) for name in DETECTORS}
    if member_state:  # the server's own formula (runtime.ood): what it will compute per request
        fits["ensemble"] = lambda: Fitted(lambda out: ood_score("ensemble", out.logits, out.features, {}, out.members),
                                          member_state)
    return fits
