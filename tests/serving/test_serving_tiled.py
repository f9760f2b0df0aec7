"""A tiled detector in the model server: each image cut into the tiles training used and the detections merged,
by the same runtime code evaluation runs (runtime.tiling), so the server's boxes are the pipeline's boxes; the
request's full-size pixels are bounded. A stub session runs the known-answer detector of tests/blob_detector.py."""

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
from runtime.detections import Decoding, Tiling
from runtime.tiling import sliced_detect
from serving import model as serving_model
from serving.model import VisionModel
from serving.protocol import parse_request
from tests.blob_detector import INPUT_WH, STRIDES, blob_outputs, scene

DECODING = Decoding(INPUT_WH, STRIDES, 0.001, 0.6, 20, tiling=Tiling((32, 32), overlap=0.25, whole_image=False))


class BlobSession:
    """The known-answer detector behind ONNX Runtime's interface (normalised input with mean 0.5, std 0.5)."""

    class _Input:
        type = "tensor(float)"

    def get_inputs(self) -> list:
        return [self._Input()]

    def run(self, names: list[str], feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        pixels = np.round((feed["input"] * 0.5 + 0.5) * 255).clip(0, 255).astype(np.uint8).transpose(0, 2, 3, 1)
        return list(blob_outputs(pixels))


@pytest.fixture
def model() -> VisionModel:
    half = np.full((1, 3, 1, 1), 0.5, np.float32)
    artifact = Artifact(["square"], INPUT_WH[0], half, half, BlobSession(), task="detection")
    artifact.outputs = ("class_logits", "box_regression", "centerness", "features")
    artifact.detection = DetectionSettings(INPUT_WH, DECODING, 0.5)
    return VisionModel("squares", artifact)


def _png(image: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def _infer(model: VisionModel, images: list[str]) -> dict:
    body = {"inputs": [{"name": "image", "datatype": "BYTES", "shape": [len(images)], "data": images}],
            "parameters": {"score_threshold": 0.0}}
    response = asyncio.run(model.predict(parse_request(json.dumps(body).encode(), None)))
    return {o.name: o for o in response.outputs}


def test_the_server_answers_a_tiled_detector_s_merged_boxes_in_each_image_s_pixels(model: VisionModel) -> None:
    first, second = scene(200, 120, [(100, 50, 10), (5, 5, 8)]), scene(90, 150, [(40, 120, 12)])
    outputs = _infer(model, [_png(first), _png(second)])
    counts = outputs["detections_per_image"].data
    boxes = np.asarray(outputs["boxes"].data, np.float32).reshape(-1, 4)
    assert counts == [2, 1]
    assert sorted(boxes[:2].tolist()) == [[5, 5, 13, 13], [100, 50, 110, 60]], "a square cut by a tile edge is whole"
    assert boxes[2].tolist() == [40, 120, 52, 132]
    assert boxes.tolist() == np.concatenate([sliced_detect(i, blob_outputs, DECODING).found.boxes
                                             for i in (first, second)]).tolist(), "the pipeline's own sliced run"


def test_a_request_s_full_size_pixels_are_bounded_for_a_tiled_detector(model: VisionModel,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(serving_model, "TILED_REQUEST_PIXELS", 30_000)
    image = _png(scene(200, 120, []))
    assert _infer(model, [image])["detections_per_image"].data == [0]
    with pytest.raises(InvalidInput, match="megapixels per request"):
        _infer(model, [image, image])
    monkeypatch.setattr(serving_model, "TILED_REQUEST_PIXELS", 10**9)
    monkeypatch.setattr(serving_model, "TILED_REQUEST_TILES", 50)
    assert DECODING.tiling.tile_count(200, 120) == 40
    with pytest.raises(InvalidInput, match="need 80 tiles"):
        _infer(model, [image, image])
