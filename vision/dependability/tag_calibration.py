"""Calibration of a tagger: does a tag said at 90% hold on 90% of the images? Each (image, tag) pair is one
binary prediction; its expected calibration error is torchmetrics' binary ECE (equal-width bins, as for
classifiers), pooled over every tag and per tag, before and after one temperature fitted on validation that
minimises the binary cross-entropy of sigmoid(logits / T) (what serving divides the logits by).
"""

from __future__ import annotations

import itertools

import numpy as np
import torch
from scipy.optimize import minimize_scalar
from torchmetrics.functional.classification import binary_calibration_error

from vision.dependability.calibration import BINS
from vision.tasks.multilabel import sigmoid


def _bce(logits: np.ndarray, targets: np.ndarray) -> float:
    z, y = np.asarray(logits, np.float64), np.asarray(targets, np.float64)
    return float((np.logaddexp(0.0, z) - y * z).mean())  # -[y log s(z) + (1 - y) log(1 - s(z))], stably


def fit_tag_temperature(logits: np.ndarray, targets: np.ndarray) -> float:
    """The temperature T > 0 minimising the binary cross-entropy of sigmoid(logits / T) on held-out data."""
    best = minimize_scalar(lambda log_t: _bce(np.asarray(logits) / np.exp(log_t), targets),
                           bounds=(np.log(0.05), np.log(20.0)), method="bounded", options={"xatol": 1e-6})
    return round(float(np.exp(best.x)), 6)


def tag_calibration_error(logits: np.ndarray, targets: np.ndarray, temperature: float = 1.0,
                          bins: int = BINS) -> float:
    """Binary ECE over every (image, tag) pair."""
    probabilities = sigmoid(np.asarray(logits) / temperature).reshape(-1)
    value = binary_calibration_error(torch.from_numpy(probabilities),
                                     torch.from_numpy((np.asarray(targets) > 0.5).reshape(-1).astype(np.int64)),
                                     n_bins=bins, norm="l1")
    return round(float(value), 6)


def per_tag_calibration_error(logits: np.ndarray, targets: np.ndarray, classes: list[str],
                              temperature: float = 1.0) -> dict[str, float]:
    """Binary ECE of each tag's own predictions."""
    return {tag: tag_calibration_error(np.asarray(logits)[:, [i]], np.asarray(targets)[:, [i]], temperature)
            for i, tag in enumerate(classes)}


def tag_reliability_rows(logits: np.ndarray, targets: np.ndarray, temperature: float = 1.0,
                         bins: int = BINS) -> list[dict[str, float]]:
    """Per probability bin over every (image, tag) pair: mean probability, the share of pairs whose image carries
    the tag (`share_tagged`: what the probability should match) and the count."""
    probabilities = sigmoid(np.asarray(logits) / temperature).reshape(-1)
    present = (np.asarray(targets) > 0.5).reshape(-1)
    rows = []
    for low, high in itertools.pairwise(np.linspace(0.0, 1.0, bins + 1)):
        inside = (probabilities > low) & (probabilities <= high) if low > 0 else probabilities <= high
        if inside.any():
            rows.append({"bin_low": round(float(low), 4), "bin_high": round(float(high), 4),
                         "confidence": round(float(probabilities[inside].mean()), 6),
                         "share_tagged": round(float(present[inside].mean()), 6), "count": int(inside.sum())})
    return rows
