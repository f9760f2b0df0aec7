"""The hardening rules hold for detection requests too, over real HTTP against a real detector bundle: a 4xx with
a short JSON error for bad images and bad parameters, decompression bombs refused before decoding, health that
answers while a large detection request letterboxes, and V1 and V2 answers with boxes."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from PIL import Image

from tests.hostile import bomb_png
from tests.serving_server import NAME, health_latencies_during, running_server
from vision.detection.model import Detector, DetectorConfig
from vision.detection.onnx import export_detector

pytestmark = pytest.mark.slow
CONFIG = DetectorConfig("resnet10t", ("car", "bus"), (64, 48), (8, 16), fpn_channels=32, head_convs=1)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A detector bundle as export + dependability leave it (an untrained network: the answers' shape and the
    server's behaviour are under test, not the boxes)."""
    folder = tmp_path_factory.mktemp("detection-bundle")
    torch.manual_seed(0)
    export_detector(Detector(CONFIG).eval(), folder / "model.onnx")
    (folder / "preprocess.json").write_text(json.dumps({
        "model_file": "model.onnx", "input_name": "input", "output_name": "class_logits", "features_name": "features",
        "input_size_px": 64, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225], "classes": ["car", "bus"],
        "execution_provider": "CPUExecutionProvider", "task": "detection",
        "detection": {"input_wh": [64, 48], "strides": [8, 16], "score_threshold": 0.001, "nms_iou": 0.6,
                      "max_detections": 20, "confidence_threshold": 0.5}}))
    state = {"bank": "ood_state/bank.npy", "k": "ood_state/k.npy"}
    (folder / "serving.json").write_text(json.dumps({"temperature": 1.0, "ood": {
        "detector": "knn", "threshold": 1.0, "tpr": 0.95, "state": state}}))
    (folder / "ood_state").mkdir()
    bank = np.random.default_rng(0).normal(size=(16, 512)).astype(np.float32)
    np.save(folder / "ood_state" / "bank.npy", bank / np.linalg.norm(bank, axis=1, keepdims=True))
    np.save(folder / "ood_state" / "k.npy", np.asarray(3))
    return folder


@pytest.fixture(scope="module")
def server(bundle: Path):
    with running_server(bundle) as running:
        yield running


def _png(width: int, height: int) -> str:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (height, width, 3), dtype=np.uint8)).save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def _infer(url: str, body: dict) -> httpx.Response:
    return httpx.post(f"{url}/v2/models/{NAME}/infer", json=body, timeout=120)


def _images(*encoded: str, **parameters: object) -> dict:
    return {"inputs": [{"name": "image", "datatype": "BYTES", "shape": [len(encoded)], "data": list(encoded)}],
            **({"parameters": parameters} if parameters else {})}


def test_v2_and_v1_answer_with_per_image_boxes(server) -> None:
    response = _infer(server.url, _images(_png(200, 100), _png(30, 60), score_threshold=0.0, max_detections=3))
    assert response.status_code == 200, response.text
    outputs = {o["name"]: o for o in response.json()["outputs"]}
    counts = outputs["detections_per_image"]["data"]
    assert len(counts) == 2
    assert outputs["boxes"]["shape"] == [sum(counts), 4]
    assert all(count <= 3 for count in counts)
    v1 = httpx.post(f"{server.url}/v1/models/{NAME}:predict", json={"instances": [{"b64": _png(80, 80)}]}, timeout=60)
    assert v1.status_code == 200
    assert set(v1.json()["predictions"][0]) == {"abstained", "ood_score", "detections"}


@pytest.mark.parametrize("body", [
    _images("bm90IGFuIGltYWdl"),                                   # base64 of text, not an image
    _images(_png(64, 48), score_threshold=-0.1),
    _images(_png(64, 48), nms_iou="0.5"),
    _images(_png(64, 48), max_detections=21),
    {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 3, 64, 64], "data": [0.0] * (3 * 64 * 64)}]},
    {"inputs": [{"name": "pixels", "datatype": "UINT8", "shape": [1, 4, 4, 4], "data": [0] * 64}]},
])
def test_malformed_detection_requests_get_a_short_400(server, body: dict) -> None:
    response = _infer(server.url, body)
    assert response.status_code == 400, response.text[:300]
    assert len(response.content) < 1024
    assert response.json()["error"]


def test_a_decompression_bomb_is_refused_before_decoding(server) -> None:
    response = _infer(server.url, _images(base64.b64encode(bomb_png(50_000, 50_000)).decode()))
    assert response.status_code in (400, 413), response.text[:300]


def test_health_answers_while_a_large_detection_request_letterboxes(server) -> None:
    heavy = _images(*[base64.b64encode(bomb_png(6_000, 6_000)).decode()] * 3)
    response, latencies, heavy_seconds = health_latencies_during(server.url, lambda: _infer(server.url, heavy))
    assert response.status_code == 200, response.text[:300]
    assert len(latencies) >= 3, "the heavy request finished before health was probed"
    # a blocked event loop holds a probe for about the whole heavy request; an answered probe on a busy 2-core
    # machine takes tens of milliseconds
    assert max(latencies) < min(0.25, heavy_seconds / 4), (latencies, heavy_seconds)
