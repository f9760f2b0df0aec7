"""How unsure the model is of each unlabelled image: the scores active learning ranks a pool by.

Every score is "higher = more uncertain", so one ranking rule serves them all. Classification scores read
probabilities (N x C); BALD and ensemble disagreement read several probability samples (T x N x C) of the
same images; a detector's image scores aggregate its boxes' calibrated confidences. Written with numpy
rather than a library: baal and modAL compute the same formulas but pull in their own training loops and
torch-only tensors, and the select stage scores ONNX Runtime outputs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from runtime import ood as serving_ood
from runtime.detections import iou_matrix

EPSILON = 1e-12


def _checked(probabilities: np.ndarray) -> np.ndarray:
    p = np.asarray(probabilities, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] < 2:
        raise ValueError(f"probabilities must be N x C with C >= 2, got shape {p.shape}")
    return p


def least_confidence(probabilities: np.ndarray) -> np.ndarray:
    """1 - the top probability: the chance the model's answer is wrong, by its own account."""
    return 1.0 - _checked(probabilities).max(axis=1)


def margin(probabilities: np.ndarray) -> np.ndarray:
    """1 - (top probability - runner-up): near 1 when two classes are almost tied."""
    top_two = np.sort(_checked(probabilities), axis=1)[:, -2:]
    return 1.0 - (top_two[:, 1] - top_two[:, 0])


def entropy(probabilities: np.ndarray) -> np.ndarray:
    """Shannon entropy of the predictive distribution, in nats (0 for a one-hot answer, log C for uniform)."""
    p = _checked(probabilities)
    return np.maximum(-(p * np.log(p + EPSILON)).sum(axis=1), 0.0) + 0.0  # + 0.0: no negative zeros in reports


def mutual_information(samples: np.ndarray) -> np.ndarray:
    """BALD (Houlsby et al. 2011; Gal et al. 2017): H[mean of the samples] - mean of H[each sample], for T
    probability samples of N images (T x N x C). High when the samples are each confident but disagree: what
    the model does not know, as opposed to what is ambiguous in the image."""
    s = np.asarray(samples, dtype=np.float64)
    if s.ndim != 3 or s.shape[0] < 2:
        raise ValueError(f"samples must be T x N x C with T >= 2, got shape {s.shape}")
    return serving_ood.mutual_information(s) + 0.0  # the server's own formula (its ensemble OOD score)


def ensemble_disagreement(member_probabilities: np.ndarray) -> np.ndarray:
    """Disagreement of M ensemble members (M x N x C): the mutual information between the prediction and the
    member, the same quantity as BALD with members in place of dropout samples (Beluch et al. 2018)."""
    return mutual_information(member_probabilities)


CLASSIFICATION_SCORES = {"least_confidence": least_confidence, "margin": margin, "entropy": entropy}
"""Scores of one probability matrix, by strategy name."""


def binary_entropy(scores: np.ndarray) -> np.ndarray:
    """Entropy of each box's confidence read as P(object of this class): 0 at 0 and 1, log 2 at 0.5."""
    s = np.clip(np.asarray(scores, dtype=np.float64), EPSILON, 1.0 - EPSILON)
    return -(s * np.log(s) + (1.0 - s) * np.log(1.0 - s))


@dataclass(frozen=True)
class BoxUncertainty:
    """One image's uncertainty from its detections."""

    mean_entropy: float
    """Mean box entropy over its detections (0 without detections)."""
    max_entropy: float
    low_confidence_boxes: int
    """Detections whose confidence lies in the unsure band."""
    detections: int

    @property
    def score(self) -> float:
        """The ranking figure: the largest box entropy, plus a small share of the count of unsure boxes so
        an image with many hesitations ranks above one with a single one."""
        return self.max_entropy + 0.01 * self.low_confidence_boxes


def box_uncertainty(scores: np.ndarray, low_confidence: tuple[float, float]) -> BoxUncertainty:
    """Aggregate one image's detection confidences (calibrated, above the decoder's floor)."""
    s = np.asarray(scores, dtype=np.float64)
    if s.size == 0:
        return BoxUncertainty(0.0, 0.0, 0, 0)
    h = binary_entropy(s)
    low, high = low_confidence
    return BoxUncertainty(float(h.mean()), float(h.max()), int(((s >= low) & (s < high)).sum()), int(s.size))


def _agreement(first: tuple[np.ndarray, np.ndarray], second: tuple[np.ndarray, np.ndarray], iou: float) -> float:
    """F1 of greedily matched same-class boxes at `iou` (1 when neither member found anything)."""
    (boxes_a, labels_a), (boxes_b, labels_b) = first, second
    if len(boxes_a) + len(boxes_b) == 0:
        return 1.0
    overlap = iou_matrix(boxes_a, boxes_b)
    overlap[np.asarray(labels_a)[:, None] != np.asarray(labels_b)[None, :]] = 0.0
    matches = 0
    while overlap.size and overlap.max() >= iou:
        i, j = np.unravel_index(int(overlap.argmax()), overlap.shape)
        matches += 1
        overlap[i, :], overlap[:, j] = 0.0, 0.0
    return 2.0 * matches / (len(boxes_a) + len(boxes_b))


def ensemble_box_disagreement(members: Sequence[tuple[np.ndarray, np.ndarray]], iou: float = 0.5) -> float:
    """One image's disagreement among M detectors, each given as (boxes M_i x 4, labels): 1 - the mean F1 of
    same-class boxes matched at `iou` over every pair of members. 0 when all find the same boxes."""
    if len(members) < 2:
        raise ValueError("an ensemble needs at least two members")
    pairs = [(a, b) for i, a in enumerate(members) for b in members[i + 1:]]
    return 1.0 - float(np.mean([_agreement(a, b, iou) for a, b in pairs]))


def fine_class_uncertainty(top_probabilities: np.ndarray, classes: int) -> float:
    """How unsure a classifier of `classes` classes is of the most doubtful of one image's crops: the largest
    1 - top probability, scaled so that a uniform answer scores 1 (0 without crops)."""
    p = np.asarray(top_probabilities, dtype=np.float64)
    if classes < 2:
        raise ValueError(f"a classifier has at least two classes, got {classes}")
    return float(((1.0 - p) * classes / (classes - 1)).max()) if p.size else 0.0

