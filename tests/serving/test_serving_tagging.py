"""The tagger's answer as the server builds it: tags concatenated image after image with their counts, none for
an image the model abstained on, the thresholds on the calibrated scale, and the capture reason near a
threshold."""

from __future__ import annotations

import numpy as np

from runtime.artifact import TagPrediction, calibrated
from serving.capture import CaptureSettings, tagging_reason
from serving.responses import RESPONSES

TAGS = ["night", "rain", "tunnel"]


def _answer() -> TagPrediction:
    return TagPrediction(tags=[["night", "tunnel"], []], probabilities=np.array([[0.9, 0.1, 0.6], [0.8, 0.7, 0.2]],
                                                                              np.float32),
                         thresholds=np.array([0.5, 0.5, 0.55], np.float32), ood_scores=np.array([0.1, 9.0], np.float32),
                         abstained=np.array([False, True]))


def test_v2_outputs_concatenate_the_tags_and_count_them_per_image() -> None:
    outputs = {o.name: o for o in RESPONSES["multilabel"].v2_outputs(_answer(), TAGS)}
    assert outputs["tags"].data == ["night", "tunnel"]
    assert outputs["tags"].shape == [2]
    assert outputs["tags_per_image"].data == [2, 0]
    assert outputs["probabilities"].shape == [2, 3]
    assert outputs["thresholds"].shape == [3]
    assert outputs["abstained"].data == [False, True]
    declared = {o["name"]: o for o in RESPONSES["multilabel"].output_types(TAGS)}
    assert set(declared) == set(outputs) == set(RESPONSES["multilabel"].names)


def test_v1_predictions_name_every_tag_s_probability_and_threshold() -> None:
    first, second = RESPONSES["multilabel"].v1_predictions(_answer(), TAGS)
    assert first["tags"] == ["night", "tunnel"]
    assert first["thresholds"]["tunnel"] == np.float32(0.55)
    assert second == {**second, "tags": [], "abstained": True}


def test_calibrated_thresholds_keep_the_decision_of_the_raw_ones() -> None:
    raw = np.array([0.2, 0.5, 0.8])
    for temperature in (0.5, 1.0, 2.0):
        scaled = calibrated(raw, temperature)
        logits = np.linspace(-4, 4, 81)
        for index, threshold in enumerate(raw):
            by_raw = 1 / (1 + np.exp(-logits)) > threshold
            by_calibrated = 1 / (1 + np.exp(-logits / temperature)) > scaled[index]
            assert (by_raw == by_calibrated).all()


def test_an_image_is_captured_when_a_tag_sits_near_its_threshold() -> None:
    settings = CaptureSettings(destination="captures", max_margin=0.05)
    thresholds = np.array([0.5, 0.5])
    assert tagging_reason(np.array([0.9, 0.53]), thresholds, False, settings) == "low_margin"
    assert tagging_reason(np.array([0.9, 0.1]), thresholds, False, settings) is None
    assert tagging_reason(np.array([0.9, 0.1]), thresholds, True, settings) == "abstained"
