"""Detection ECE (D-ECE) and the confidence temperature, checked against hand computations."""

from __future__ import annotations

import numpy as np
import pytest

from runtime.detections import Detections
from vision.detection.calibration import (
    Scored,
    calibrate,
    choose_temperature,
    detection_ece,
    fit_temperature,
    scored,
    true_positives,
)


def _found(boxes: list[list[float]], scores: list[float], labels: list[int]) -> Detections:
    return Detections(np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(scores, np.float32),
                      np.asarray(labels, np.int64))


def test_detection_ece_on_hand_made_detections_equals_the_hand_computation() -> None:
    # one image, two true boxes of class 0 and one of class 1
    truth = np.asarray([[0, 0, 10, 10], [20, 20, 30, 30], [40, 40, 50, 50]], np.float32)
    labels = np.asarray([0, 0, 1])
    found = _found([[0, 0, 10, 10],      # 0.95, class 0, exact: true positive
                    [0, 0, 10, 10.5],    # 0.92, class 0, duplicate of a matched box: false positive
                    [20, 20, 30, 30],    # 0.55, class 0, exact: true positive
                    [40, 40, 50, 50],    # 0.52, class 0 on a class-1 box: false positive
                    [60, 60, 70, 70],    # 0.35, nothing there: false positive
                    [40, 40, 50, 50]],   # 0.20, below the 0.3 floor: not counted
                   [0.95, 0.92, 0.55, 0.52, 0.35, 0.20], [0, 0, 0, 0, 0, 1])
    hits = true_positives(found, truth, labels)
    assert hits.tolist() == [True, False, True, False, False, True]
    measured = scored([found], [truth], [labels])
    assert measured.confidences.tolist() == pytest.approx([0.95, 0.92, 0.55, 0.52, 0.35])
    # 10 bins over [0, 1]: 0.95 and 0.92 share [0.9, 1] (precision 1/2, mean confidence 0.935), 0.55 and 0.52
    # share [0.5, 0.6) (precision 1/2, mean 0.535), 0.35 is alone in [0.3, 0.4) (precision 0)
    by_hand = (2 * abs(0.5 - 0.935) + 2 * abs(0.5 - 0.535) + 1 * abs(0.0 - 0.35)) / 5
    assert by_hand == pytest.approx(0.258)
    assert detection_ece(measured.confidences, measured.correct) == pytest.approx(by_hand, abs=1e-6)


def test_detections_sharing_a_bin_compare_the_bin_precision_with_its_mean_confidence() -> None:
    confidences = np.asarray([0.81, 0.83, 0.85, 0.84])  # one bin [0.79, 0.86)
    correct = np.asarray([True, True, False, True])
    assert detection_ece(confidences, correct) == pytest.approx(abs(0.75 - 0.8325), abs=1e-6)


def test_a_temperature_that_would_not_help_on_validation_is_not_used() -> None:
    confidences = np.asarray([0.35, 0.45, 0.55, 0.65, 0.75, 0.85, 0.95])
    correct = np.asarray([False, False, True, True, True, True, True])  # already fairly calibrated, one-sided
    chosen = choose_temperature(Scored(confidences, correct))
    fitted = fit_temperature(confidences, correct)
    if detection_ece(calibrate(confidences, fitted), correct) >= detection_ece(confidences, correct):
        assert chosen == 1.0
    else:
        assert chosen == fitted


def test_no_detection_has_zero_error() -> None:
    assert detection_ece(np.zeros(0), np.zeros(0, bool)) == 0.0


def test_a_fitted_temperature_tames_overconfidence_without_reordering() -> None:
    rng = np.random.default_rng(0)
    truth_probability = rng.uniform(0.05, 0.95, 4000)
    correct = rng.uniform(size=4000) < truth_probability
    overconfident = calibrate(truth_probability, 1 / 3)  # logits tripled
    temperature = fit_temperature(overconfident, correct)
    assert temperature == pytest.approx(3.0, rel=0.15)
    assert choose_temperature(Scored(overconfident, correct)) == temperature
    before = detection_ece(overconfident, correct)
    assert detection_ece(calibrate(overconfident, temperature), correct) < before / 2
    order = np.argsort(overconfident)
    assert np.all(np.diff(calibrate(overconfident[order], temperature)) >= 0), "calibration keeps the ranking"

