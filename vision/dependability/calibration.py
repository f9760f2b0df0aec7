"""Calibration: does 90% confidence mean 90% right? Expected calibration error and temperature scaling.

torchmetrics computes the ECE (equal-width confidence bins, as in Guo et al.
2017); scipy fits the single temperature that minimises validation
cross-entropy. Serving divides logits by the saved temperature before softmax.
"""

from __future__ import annotations

import itertools

import numpy as np
import torch
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax, softmax
from torchmetrics.functional.classification import multiclass_calibration_error

BINS = 15


def expected_calibration_error(logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0,
                               bins: int = BINS) -> float:
    probabilities = torch.from_numpy(softmax(np.asarray(logits, np.float64) / temperature, axis=1))
    value = multiclass_calibration_error(probabilities, torch.from_numpy(np.asarray(labels, np.int64)),
                                         num_classes=probabilities.shape[1], n_bins=bins, norm="l1")
    return round(float(value), 6)


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature T > 0 minimising the cross-entropy of softmax(logits / T) on held-out data."""
    z, y = np.asarray(logits, np.float64), np.asarray(labels, np.int64)

    def nll(log_t: float) -> float:
        return float(-log_softmax(z / np.exp(log_t), axis=1)[np.arange(len(y)), y].mean())

    best = minimize_scalar(nll, bounds=(np.log(0.05), np.log(20.0)), method="bounded", options={"xatol": 1e-6})
    return round(float(np.exp(best.x)), 6)


def reliability_rows(logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0,
                     bins: int = BINS) -> list[dict[str, float]]:
    """Per confidence bin: mean confidence, accuracy and count (the reliability diagram's bars)."""
    probabilities = softmax(np.asarray(logits, np.float64) / temperature, axis=1)
    confidence, correct = probabilities.max(1), probabilities.argmax(1) == np.asarray(labels)
    edges = np.linspace(0.0, 1.0, bins + 1)
    rows = []
    for low, high in itertools.pairwise(edges):
        inside = (confidence > low) & (confidence <= high)
        if inside.any():
            rows.append({"bin_low": round(float(low), 4), "bin_high": round(float(high), 4),
                         "confidence": round(float(confidence[inside].mean()), 6),
                         "accuracy": round(float(correct[inside].mean()), 6), "count": int(inside.sum())})
    return rows
