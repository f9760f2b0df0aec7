"""Calibration error and temperature scaling: exact on hand-made cases, and a fitted temperature helps."""

from __future__ import annotations

import numpy as np
import pytest

from vision.dependability.calibration import expected_calibration_error, fit_temperature, reliability_rows


def _logits_with_confidence(confidence: float, n: int, classes: int = 2) -> np.ndarray:
    """Logits whose softmax gives `confidence` to class 0 (two classes)."""
    assert classes == 2
    return np.tile([np.log(confidence / (1 - confidence)), 0.0], (n, 1))


def test_ece_is_zero_when_confidence_matches_accuracy_and_the_gap_otherwise() -> None:
    logits = _logits_with_confidence(0.9, 10)
    nine_right = np.array([0] * 9 + [1])
    assert expected_calibration_error(logits, nine_right) == pytest.approx(0.0, abs=1e-6)
    half_right = np.array([0] * 5 + [1] * 5)
    assert expected_calibration_error(logits, half_right) == pytest.approx(0.4, abs=1e-6)


def test_reliability_rows_hold_each_bins_confidence_accuracy_and_count() -> None:
    logits = np.vstack([_logits_with_confidence(0.9, 4), _logits_with_confidence(0.6, 2)])
    rows = reliability_rows(logits, np.array([0, 0, 0, 1, 1, 1]))
    assert [(r["confidence"], r["accuracy"], r["count"]) for r in rows] == [(0.6, 0.0, 2), (0.9, 0.75, 4)]


def test_temperature_scaling_undoes_overconfidence() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 5, 2000)
    honest = rng.normal(size=(2000, 5))
    honest[np.arange(2000), labels] += 1.5  # a model that is right often, not always
    overconfident = 4.0 * honest
    temperature = fit_temperature(overconfident, labels)
    assert temperature == pytest.approx(4.0 * fit_temperature(honest, labels), rel=1e-3)  # scaling logits scales T
    assert temperature > 1.5
    assert expected_calibration_error(overconfident, labels, temperature) < 0.03
    assert expected_calibration_error(overconfident, labels) > 0.1
