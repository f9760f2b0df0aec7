"""Calibration of box confidences: detection expected calibration error (D-ECE, Kueppers et al. 2020,
"Multivariate Confidence Calibration for Object Detection") on confidence alone, and a fitted temperature.

Written by hand: the authors' own library (netcal) pulls in pyro and tensorboard for this one figure. D-ECE
here is their 1-D form: the detections scoring at least DECE_MIN_SCORE (the operating range; a fixed set of
detections, before and after calibration) are binned by confidence over [0, 1]; in each bin the precision
(the share matched to a true box of the same class at IoU >= DECE_IOU, each true box matched once, best score
first) is compared with the mean confidence; the gaps are averaged weighted by bin size. The temperature
divides the confidence's logit (score' = sigmoid(logit(score) / T)): monotonic, so detections, their ranking
and mAP are unchanged; only what a score of 0.8 means changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize_scalar

from runtime.detections import Detections, iou_matrix

DECE_MIN_SCORE = 0.3
DECE_IOU = 0.6
BINS = 10
EPSILON = 1e-6


@dataclass(frozen=True)
class Scored:
    """Every detection of a split at or above a score: its confidence and whether it is a true positive."""

    confidences: np.ndarray
    correct: np.ndarray


def true_positives(found: Detections, boxes: np.ndarray, labels: np.ndarray, iou: float = DECE_IOU) -> np.ndarray:
    """Per detection (best first), whether it matches a not-yet-matched true box of its class at IoU >= `iou`."""
    correct = np.zeros(len(found), bool)
    if not len(found) or not len(boxes):
        return correct
    overlap = iou_matrix(found.boxes, np.asarray(boxes, np.float32).reshape(-1, 4))
    taken = np.zeros(len(boxes), bool)
    for index in np.argsort(-found.scores, kind="stable"):
        candidates = (labels == found.labels[index]) & ~taken & (overlap[index] >= iou)
        if candidates.any():
            best = int(np.argmax(np.where(candidates, overlap[index], -1.0)))
            taken[best] = correct[index] = True
    return correct


def scored(found: Sequence[Detections], boxes: Sequence[np.ndarray], labels: Sequence[np.ndarray],
           min_score: float = DECE_MIN_SCORE) -> Scored:
    confidences, correct = [], []
    for detections, truth, classes in zip(found, boxes, labels, strict=True):
        hits = true_positives(detections, truth, classes)
        keep = detections.scores >= min_score
        confidences.append(detections.scores[keep])
        correct.append(hits[keep])
    return Scored(np.concatenate(confidences).astype(np.float64) if confidences else np.zeros(0),
                  np.concatenate(correct) if correct else np.zeros(0, bool))


def calibrate(confidences: np.ndarray, temperature: float) -> np.ndarray:
    p = np.clip(np.asarray(confidences, np.float64), EPSILON, 1 - EPSILON)
    return 1.0 / (1.0 + np.exp(-np.log(p / (1 - p)) / temperature))


def reliability_bins(confidences: np.ndarray, correct: np.ndarray, bins: int = BINS) -> list[dict[str, float]]:
    """Per non-empty bin over [0, 1]: mean confidence, precision and count."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.searchsorted(edges, confidences, side="right") - 1, 0, bins - 1)
    rows = []
    for b in range(bins):
        inside = which == b
        if inside.any():
            rows.append({"confidence": round(float(confidences[inside].mean()), 6),
                         "precision": round(float(correct[inside].mean()), 6), "count": int(inside.sum())})
    return rows


def detection_ece(confidences: np.ndarray, correct: np.ndarray, bins: int = BINS) -> float:
    """D-ECE: sum over bins of (bin share) x |precision - mean confidence|; 0 when there is no detection."""
    rows = reliability_bins(np.asarray(confidences, np.float64), np.asarray(correct, bool), bins)
    total = sum(r["count"] for r in rows)
    if not total:
        return 0.0
    return float(sum(r["count"] / total * abs(r["precision"] - r["confidence"]) for r in rows))


def fit_temperature(confidences: np.ndarray, correct: np.ndarray) -> float:
    """The temperature minimising the binary cross-entropy of the calibrated confidences (1.0 without data)."""
    if len(confidences) < 2 or correct.all() or not correct.any():
        return 1.0

    def loss(temperature: float) -> float:
        p = np.clip(calibrate(confidences, temperature), EPSILON, 1 - EPSILON)
        return float(-np.mean(correct * np.log(p) + (~correct) * np.log(1 - p)))

    return round(float(minimize_scalar(loss, bounds=(0.05, 20.0), method="bounded").x), 6)



def choose_temperature(validation: Scored) -> float:
    """The fitted temperature when it lowers validation D-ECE, else 1.0: a temperature fitted on few or
    one-sided detections can make calibration worse, and the server should then report the raw scores."""
    temperature = fit_temperature(validation.confidences, validation.correct)
    before = detection_ece(validation.confidences, validation.correct)
    after = detection_ece(calibrate(validation.confidences, temperature), validation.correct)
    return temperature if after < before else 1.0
