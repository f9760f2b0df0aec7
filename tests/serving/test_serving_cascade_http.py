"""A cascade's release served as one model over real HTTP: the detector's boxes with the classifier's fine class
and both scores, the same answer the pipeline's evaluation computes in-process (runtime.cascade), abstentions kept
apart, and the requests a cascade cannot answer (normalised FP32: nothing to crop from) refused with a 400."""

from __future__ import annotations

import base64
import io
import json
import shutil
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from runtime.artifact import DetectionRequest
from runtime.cascade import CascadeArtifact, cascade
from tests.serving.test_serving_detection_http import bundle as detector_bundle  # noqa: F401 (a fixture)
from tests.serving_server import NAME, make_bundle, running_server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def release(detector_bundle: Path, tiny_digits: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:  # noqa: F811
    """A cascade's release as its promote stage writes it: both bundles and cascade.json."""
    folder = tmp_path_factory.mktemp("cascade-release") / "release"
    shutil.copytree(detector_bundle, folder / "detector")
    (folder / "classifier").mkdir()
    make_bundle(folder / "classifier", tiny_digits)
    classes = json.loads((folder / "classifier" / "preprocess.json").read_text())["classes"]
    (folder / "cascade.json").write_text(json.dumps({"detector": "cars", "classifier": "kinds", "classes": classes,
                                                     "padding": 0.2, "detector_digest": "sha256:0",
                                                     "classifier_digest": "sha256:1"}))
    return folder


@pytest.fixture(scope="module")
def server(release: Path):
    with running_server(release) as running:
        yield running


def _png(seed: int, width: int = 120, height: int = 90) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)).save(buffer,
                                                                                                          "PNG")
    return buffer.getvalue()


def test_the_server_answers_each_box_with_both_classes_as_the_evaluation_does(server, release: Path) -> None:
    images = [_png(1), _png(2, 64, 128)]
    body = {"inputs": [{"name": "image", "datatype": "BYTES", "shape": [2],
                        "data": [base64.b64encode(i).decode() for i in images]}],
            "parameters": {"score_threshold": 0.0, "max_detections": 4}}
    response = httpx.post(f"{server.url}/v2/models/{NAME}/infer", json=body, timeout=120)
    assert response.status_code == 200, response.text
    outputs = {o["name"]: o["data"] for o in response.json()["outputs"]}
    pair = CascadeArtifact.load([release])
    expected = cascade(pair.detector, pair.classifier, [pair.decode(i) for i in images], pair.padding,
                       DetectionRequest(0.0, pair.default_request().nms_iou, 4))
    assert outputs["detections_per_image"] == [len(a.boxes) for a in expected]
    assert sum(outputs["detections_per_image"]) > 0, "score_threshold 0 asks for every detection"
    boxes = [box for answer in expected for box in answer.boxes]
    assert outputs["labels"] == [box.fine or "" for box in boxes]
    assert outputs["coarse_labels"] == [box.coarse for box in boxes]
    assert np.allclose(outputs["boxes"], [v for box in boxes for v in box.box], atol=1e-3)
    assert np.allclose(outputs["scores"], [box.score for box in boxes], atol=1e-5)
    assert np.allclose(outputs["fine_scores"], [box.fine_score for box in boxes], atol=1e-5)
    assert outputs["abstained"] == [a.abstained for a in expected]
    assert set(outputs["labels"]) <= {*pair.classes, ""}
    v1 = httpx.post(f"{server.url}/v1/models/{NAME}:predict", timeout=120,
                    json={"instances": [{"b64": base64.b64encode(images[0]).decode()}],
                          "parameters": {"score_threshold": 0.0, "max_detections": 4}})
    assert v1.status_code == 200, v1.text
    detections = v1.json()["predictions"][0]["detections"]
    assert [d["label"] for d in detections] == [box.fine for box in expected[0].boxes]
    assert {"coarse_label", "coarse_score", "fine_score", "score", "box"} <= set(detections[0])


def test_the_cascade_describes_itself_and_refuses_what_it_cannot_crop(server) -> None:
    metadata = httpx.get(f"{server.url}/v2/models/{NAME}", timeout=30).json()
    assert {o["name"] for o in metadata["outputs"]} >= {"boxes", "labels", "coarse_labels", "fine_scores"}
    normalised = {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 3, 48, 64],
                              "data": [0.0] * (3 * 48 * 64)}]}
    refused = httpx.post(f"{server.url}/v2/models/{NAME}/infer", json=normalised, timeout=30)
    assert refused.status_code == 400
    assert "crops its detections from the images" in refused.json()["error"]
    bad = httpx.post(f"{server.url}/v2/models/{NAME}/infer", timeout=30, json={
        "inputs": [{"name": "image", "datatype": "BYTES", "shape": [1], "data": [base64.b64encode(_png(3)).decode()]}],
        "parameters": {"nms_iou": 3}})
    assert bad.status_code == 400
    assert "nms_iou" in bad.json()["error"]
