"""The model server's detection answers on hand-made network outputs: boxes back in each image's own pixels,
calibrated scores, class names, per-image counts, abstention, per-request limits and 400s for bad parameters.

A stub stands in for the ONNX Runtime session so each output tensor is exactly what the test says; the real
session, HTTP and `autodl serve` are exercised by the detection end-to-end test."""

from __future__ import annotations

import asyncio
import base64
import io
import json

import numpy as np
import pytest
from kserve.errors import InvalidInput
from PIL import Image

from runtime.artifact import Artifact, DetectionSettings
from runtime.detections import Decoding
from serving.model import VisionModel
from serving.protocol import parse_request

INPUT_WH, STRIDES, CLASSES, TEMPERATURE = (64, 48), (8, 16), ["car", "bus"], 2.0
ANCHORS = 6 * 8 + 3 * 4
FOUND_AT = 2 * 8 + 3
"""Level 0, row 2, column 3: the location centred at (24, 16) in input pixels."""


class StubSession:
    """Answers like the exported detector: one confident `bus` at FOUND_AT in every image; the pooled features
    are each image's mean input value, so a very bright image is far from the (dark) training images."""

    class _Input:
        type = "tensor(float)"

    def get_inputs(self) -> list:
        return [self._Input()]

    def run(self, names: list[str], feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        x = feed["input"]
        count = len(x)
        logits = np.full((count, ANCHORS, 2), -10.0, np.float32)
        logits[:, FOUND_AT, 1] = 4.0
        regression = np.zeros((count, ANCHORS, 4), np.float32)
        regression[:, FOUND_AT] = (1.0, 1.0, 2.0, 2.0)  # in strides: box (16, 8, 40, 32) in input pixels
        centerness = np.full((count, ANCHORS), -10.0, np.float32)
        centerness[:, FOUND_AT] = 4.0
        features = np.repeat(x.mean(axis=(1, 2, 3))[:, None], 2, axis=1).astype(np.float32)
        return [logits, regression, centerness, features]


@pytest.fixture
def model() -> VisionModel:
    artifact = Artifact(CLASSES, INPUT_WH[0], np.full((1, 3, 1, 1), 0.5, np.float32),
                        np.full((1, 3, 1, 1), 0.5, np.float32), StubSession(), temperature=TEMPERATURE,
                        detector="mahalanobis", threshold=0.5,
                        state={"mu": np.zeros((1, 2)), "precision": np.eye(2)}, task="detection")
    artifact.outputs = ("class_logits", "box_regression", "centerness", "features")
    artifact.detection = DetectionSettings(INPUT_WH, Decoding(INPUT_WH, STRIDES, 0.001, 0.6, 10), 0.5)
    from runtime.ood import mahalanobis_terms

    artifact.state.update(mahalanobis_terms(artifact.state))
    return VisionModel("cars", artifact)


def _png(width: int, height: int, value: int) -> str:
    buffer = io.BytesIO()
    Image.fromarray(np.full((height, width, 3), value, np.uint8)).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def _v2(model: VisionModel, images: list[str], parameters: dict | None = None) -> dict:
    body = {"inputs": [{"name": "image", "datatype": "BYTES", "shape": [len(images)], "data": images}],
            **({"parameters": parameters} if parameters is not None else {})}
    response = asyncio.run(model.predict(parse_request(json.dumps(body).encode(), None)))
    return {o.name: o for o in response.outputs}


def test_boxes_come_back_in_the_image_s_own_pixels_with_calibrated_scores(model: VisionModel) -> None:
    outputs = _v2(model, [_png(128, 96, 120)])  # letterboxed at scale 0.5 into 64 x 48
    assert outputs["detections_per_image"].data == [1]
    assert outputs["boxes"].shape == [1, 4]
    assert outputs["boxes"].data == pytest.approx([32.0, 16.0, 80.0, 64.0])
    raw = 1 / (1 + np.exp(-4.0))  # sqrt(sigmoid(4) x sigmoid(4))
    calibrated = 1 / (1 + np.exp(-np.log(raw / (1 - raw)) / TEMPERATURE))
    assert outputs["scores"].data == pytest.approx([calibrated], abs=1e-5)
    assert outputs["labels"].data == [1]
    assert outputs["labels"].datatype == "INT64"
    assert outputs["label_names"].data == ["bus"]
    assert outputs["abstained"].data == [False]


def test_a_batch_concatenates_detections_and_abstains_on_the_unfamiliar_image(model: VisionModel) -> None:
    outputs = _v2(model, [_png(128, 96, 120), _png(64, 48, 255), _png(32, 24, 120)])
    assert outputs["abstained"].data == [False, True, False]
    assert outputs["detections_per_image"].data == [1, 0, 1]
    assert outputs["boxes"].shape == [2, 4]
    assert outputs["boxes"].data[4:] == pytest.approx([8.0, 4.0, 20.0, 16.0])  # 32 x 24 px: scale 2
    assert outputs["ood_score"].data[1] > 0.5 > outputs["ood_score"].data[0]


def test_a_request_may_raise_the_score_threshold_within_its_limits(model: VisionModel) -> None:
    assert _v2(model, [_png(128, 96, 120)], {"score_threshold": 0.95})["detections_per_image"].data == [0]
    assert _v2(model, [_png(128, 96, 120)], {"score_threshold": 0.0, "max_detections": 1})[
        "detections_per_image"].data == [1]


@pytest.mark.parametrize("parameters", [{"score_threshold": 1.5}, {"score_threshold": "high"},
                                        {"nms_iou": 0.0}, {"nms_iou": -0.5}, {"max_detections": 11},
                                        {"max_detections": 0}, {"max_detections": 2.5}, {"max_detections": True}])
def test_parameters_outside_the_limits_are_refused(model: VisionModel, parameters: dict) -> None:
    body = {"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1], "data": [_png(64, 48, 120)]}],
            "parameters": parameters}
    with pytest.raises(InvalidInput, match="parameters\\."):
        asyncio.run(model.predict(parse_request(json.dumps(body).encode(), None)))


def test_v1_answers_the_same_detections_as_json_objects(model: VisionModel) -> None:
    answer = asyncio.run(model.predict({"instances": [{"b64": _png(128, 96, 120)}], "parameters": {}}))
    (only,) = answer["predictions"]
    assert only["abstained"] is False
    (detection,) = only["detections"]
    assert detection["box"] == pytest.approx([32.0, 16.0, 80.0, 64.0])
    assert detection["label_name"] == "bus"
    with pytest.raises(InvalidInput, match="parameters must be a JSON object"):
        asyncio.run(model.predict({"instances": [{"b64": _png(64, 48, 1)}], "parameters": [1]}))


def test_pixels_and_normalised_input_take_the_detector_s_shapes(model: VisionModel) -> None:
    pixels = np.full((1, 96, 128, 3), 120, np.uint8)
    body = {"inputs": [{"name": "pixels", "datatype": "UINT8", "shape": [1, 96, 128, 3],
                        "data": pixels.ravel().tolist()}]}
    response = asyncio.run(model.predict(parse_request(json.dumps(body).encode(), None)))
    boxes = next(o for o in response.outputs if o.name == "boxes")
    assert boxes.data == pytest.approx([32.0, 16.0, 80.0, 64.0])
    wrong = {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 3, 64, 64], "data": [0.0] * 3 * 64 * 64}]}
    with pytest.raises(InvalidInput, match="N x 3 x 48 x 64"):
        asyncio.run(model.predict(parse_request(json.dumps(wrong).encode(), None)))
    assert model.get_input_types()[2]["shape"] == [-1, 3, 48, 64]
    assert [o["name"] for o in model.get_output_types()] == ["boxes", "scores", "labels", "label_names",
                                                             "detections_per_image", "ood_score", "abstained"]


def test_detection_requests_never_run_on_the_event_loop(model: VisionModel) -> None:
    """A detector's inference takes tens of milliseconds even for a tiny image: always the thread pool."""
    body = {"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1], "data": [_png(8, 8, 120)]}]}
    assert model._light(parse_request(json.dumps(body).encode(), None)) is False
