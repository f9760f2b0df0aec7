"""The real KServe model server over HTTP on loopback: same answers as the offline ONNX model, 4xx for
anything malformed, never a 5xx."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from ruamel.yaml import YAML

from tests.conftest import MINIMAL_SPEC, REPO_ROOT, TINY_CLASSES, free_port, shared_schemas
from tests.serving_server import NAME, SIZE, TEMPERATURE, make_bundle, running_server
from vision.compression.onnx import predict, session
from vision.data.dataset import load_split, to_tensor
from vision.dependability.ood import logit_scores

pytestmark = pytest.mark.slow
OIP_SPEC = "kserve-open-inference-protocol-v2-rest.yaml"


@pytest.fixture(scope="module")
def bundle(tiny_digits: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_bundle(tmp_path_factory.mktemp("bundle"), tiny_digits)


@pytest.fixture(scope="module")
def server(bundle: Path) -> Iterator[str]:
    with running_server(bundle, "--max_body_mb", "1") as running:
        yield running.url


@pytest.fixture(scope="module")
def test_images(tiny_digits: Path) -> tuple[list[bytes], np.ndarray]:
    """The test split as the PNG files a client would send, and as the pixels offline evaluation reads."""
    rows = [line.split(",") for line in (tiny_digits / "split.csv").read_text().splitlines()[1:]]
    files = [tiny_digits / "ingest" / path for path, _, split in rows if split == "test"]
    data = load_split(tiny_digits / "ingest", tiny_digits / "split.csv", "test", TINY_CLASSES, SIZE)
    return [f.read_bytes() for f in files], data.images[:]


def _offline(bundle: Path, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    logits = predict(session(bundle / "model.onnx"), images).astype(np.float64) / TEMPERATURE
    probabilities = np.exp(logits - logits.max(1, keepdims=True))
    return probabilities / probabilities.sum(1, keepdims=True), logit_scores("energy", logits * TEMPERATURE)


def _v2(url: str, inputs: list[dict], model: str = NAME) -> httpx.Response:
    return httpx.post(f"{url}/v2/models/{model}/infer", json={"inputs": inputs}, timeout=30)


def _outputs(response: httpx.Response) -> dict[str, list]:
    assert response.status_code == 200, response.text
    return {o["name"]: o["data"] for o in response.json()["outputs"]}


def test_health_and_metadata(server: str) -> None:
    assert httpx.get(f"{server}/v2/health/live").status_code == 200
    assert httpx.get(f"{server}/v2/health/ready").status_code == 200
    assert httpx.get(f"{server}/v2/models/{NAME}/ready").status_code == 200
    assert httpx.get(f"{server}/v2/models/{NAME}").json()["name"] == NAME


def test_encoded_images_get_the_offline_model_s_answers(server: str, bundle: Path, test_images) -> None:
    files, pixels = test_images
    expected, scores = _offline(bundle, pixels)
    out = _outputs(_v2(server, [{"name": "image", "datatype": "BYTES", "shape": [len(files)],
                                 "data": [base64.b64encode(f).decode() for f in files]}]))
    probabilities = np.asarray(out["probabilities"]).reshape(len(files), len(TINY_CLASSES))
    np.testing.assert_allclose(probabilities, expected, atol=1e-5)
    np.testing.assert_allclose(out["ood_score"], scores, rtol=1e-4, atol=1e-4)
    threshold = json.loads((bundle / "serving.json").read_text())["ood"]["threshold"]
    assert out["abstained"] == [bool(s > threshold) for s in out["ood_score"]]
    assert any(out["abstained"])
    assert not all(out["abstained"])
    for label, abstained, row in zip(out["label"], out["abstained"], probabilities, strict=True):
        assert label == ("" if abstained else TINY_CLASSES[int(row.argmax())])


def test_pixels_and_normalised_tensors_and_v1_agree_with_encoded_images(server: str, bundle: Path,
                                                                         test_images) -> None:
    files, pixels = test_images
    expected, _ = _offline(bundle, pixels)
    uint8 = _outputs(_v2(server, [{"name": "pixels", "datatype": "UINT8", "shape": list(pixels.shape),
                                   "data": pixels.ravel().tolist()}]))
    floats = to_tensor(pixels).numpy()
    fp32 = _outputs(_v2(server, [{"name": "input", "datatype": "FP32", "shape": list(floats.shape),
                                  "data": floats.ravel().tolist()}]))
    for out in (uint8, fp32):
        np.testing.assert_allclose(np.asarray(out["probabilities"]).reshape(expected.shape), expected, atol=1e-5)
    v1 = httpx.post(f"{server}/v1/models/{NAME}:predict",
                    json={"instances": [{"b64": base64.b64encode(f).decode()} for f in files]}, timeout=30)
    assert v1.status_code == 200, v1.text
    predictions = v1.json()["predictions"]
    got = np.asarray([[p["probabilities"][c] for c in TINY_CLASSES] for p in predictions])
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert all((p["label"] is None) == p["abstained"] for p in predictions)


def _png(test_images) -> str:
    return base64.b64encode(test_images[0][0]).decode()


MALFORMED = {
    "wrong shape": lambda png: {"inputs": [{"name": "x", "datatype": "UINT8", "shape": [1, 4, 4],
                                            "data": [0] * 16}]},
    "shape and data disagree": lambda png: {"inputs": [{"name": "x", "datatype": "UINT8", "shape": [1, 4, 4, 3],
                                                        "data": [0] * 5}]},
    "wrong dtype": lambda png: {"inputs": [{"name": "x", "datatype": "INT64", "shape": [1, 2], "data": [1, 2]}]},
    "wrong float size": lambda png: {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 3, 4, 4],
                                                 "data": [0.0] * 48}]},
    "not an image": lambda png: {"inputs": [{"name": "x", "datatype": "BYTES", "shape": [1],
                                             "data": [base64.b64encode(b"hello").decode()]}]},
    "not base64": lambda png: {"inputs": [{"name": "x", "datatype": "BYTES", "shape": [1], "data": ["%%%"]}]},
    "truncated image": lambda png: {"inputs": [{"name": "x", "datatype": "BYTES", "shape": [1],
                                                "data": [base64.b64encode(base64.b64decode(png)[:40]).decode()]}]},
    "two tensors": lambda png: {"inputs": [{"name": "a", "datatype": "BYTES", "shape": [1], "data": [png]}] * 2},
    "no inputs": lambda png: {"inputs": []},
    "inputs not a list": lambda png: {"inputs": {"name": "x"}},
    "empty batch": lambda png: {"inputs": [{"name": "x", "datatype": "BYTES", "shape": [0], "data": []}]},
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_v2_requests_get_a_4xx_json_error(server: str, test_images, case: str) -> None:
    response = httpx.post(f"{server}/v2/models/{NAME}/infer", json=MALFORMED[case](_png(test_images)), timeout=30)
    assert 400 <= response.status_code < 500, (case, response.status_code, response.text)
    assert "error" in response.json() or "detail" in response.json()


@pytest.mark.parametrize(("body", "content_type"), [(b"{not json", "application/json"),
                                                    (b'{"instances": "x"}', "application/json"),
                                                    (b'{"instances": [[1, 2], [3]]}', "application/json"),
                                                    (b'{"instances": [{"b64": 5}]}', "application/json")])
def test_malformed_v1_requests_get_a_4xx(server: str, body: bytes, content_type: str) -> None:
    response = httpx.post(f"{server}/v1/models/{NAME}:predict", content=body,
                          headers={"content-type": content_type}, timeout=30)
    assert 400 <= response.status_code < 500, (body, response.status_code, response.text)


def test_unknown_model_and_oversized_payload(server: str, test_images) -> None:
    assert _v2(server, [{"name": "x", "datatype": "BYTES", "shape": [1], "data": [_png(test_images)]}],
               model="nope").status_code == 404
    huge = httpx.post(f"{server}/v2/models/{NAME}/infer", content=b"x" * (2 * 1024 * 1024),
                      headers={"content-type": "application/json"}, timeout=30)
    assert huge.status_code == 413
    assert "larger than" in huge.json()["error"]
    assert httpx.get(f"{server}/v2/health/ready").status_code == 200  # still serving


def test_autodl_serve_starts_the_server_on_a_project_s_pipeline_outputs(bundle: Path, tmp_path: Path,
                                                                         test_images) -> None:
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "tiny.yaml").write_text(MINIMAL_SPEC.format(name="tiny"))
    for stage, files in (("export", ("model.onnx", "preprocess.json")), ("dependability", ("serving.json",))):
        (tmp_path / "models" / "tiny" / stage).mkdir(parents=True)
        for name in files:
            shutil.copy(bundle / name, tmp_path / "models" / "tiny" / stage / name)
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("w") as output:
        process = subprocess.Popen([sys.executable, "-m", "cli.main", "--root", str(tmp_path), "serve",
                                    "specs/tiny.yaml", "--port", str(port)], cwd=REPO_ROOT, stdout=output,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    try:
        url, deadline = f"http://127.0.0.1:{port}", time.monotonic() + 90
        while time.monotonic() < deadline and process.poll() is None:
            try:
                response = _v2(url, [{"name": "x", "datatype": "BYTES", "shape": [1], "data": [_png(test_images)]}],
                               model="tiny")
                break
            except httpx.TransportError:
                time.sleep(0.3)
        else:
            pytest.fail(f"autodl serve did not answer:\n{log.read_text()}")
        assert _outputs(response)["probabilities"]
        assert f"serving tiny on http://127.0.0.1:{port} " in log.read_text()
        with pytest.raises(httpx.ConnectError):  # it binds what it prints: 127.0.0.2 reaches only a 0.0.0.0 bind
            httpx.get(f"http://127.0.0.2:{port}/v2/health/live", timeout=5)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


def test_autodl_serve_says_what_to_run_when_the_pipeline_has_not(tmp_path: Path) -> None:
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "tiny.yaml").write_text(MINIMAL_SPEC.format(name="tiny"))
    done = subprocess.run([sys.executable, "-m", "cli.main", "--root", str(tmp_path), "serve",
                           "specs/tiny.yaml"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "missing: run `dvc repro` first" in done.stderr


def test_schemathesis_finds_no_server_error_against_the_open_inference_protocol(server: str, bundle: Path,
                                                                                   tmp_path: Path) -> None:
    """Fuzz every operation of KServe's OIP v2 REST spec (paths written `${NAME}` there, `{NAME}` here)."""
    spec = YAML(typ="safe", pure=True).load((shared_schemas() / OIP_SPEC).read_text(encoding="utf-8"))
    spec["paths"] = {path.replace("${", "{"): operation for path, operation in spec["paths"].items()}
    with (tmp_path / "oip-v2.yaml").open("w") as handle:
        YAML(typ="safe", pure=True).dump(spec, handle)
    version = "sha256-" + hashlib.sha256((bundle / "model.onnx").read_bytes()).hexdigest()[:12]
    # The generic protocol schema accepts any tensors; a model accepts only its own inputs and answers the
    # rest with the 400 the protocol documents. Every other check runs as schemathesis defines it.
    (tmp_path / "schemathesis.toml").write_text(f'[parameters]\n"path.MODEL_NAME" = "{NAME}"\n'
                                                f'"path.MODEL_VERSION" = "{version}"\n'
                                                '[checks.positive_data_acceptance]\n'
                                                'expected-statuses = ["2XX", "400"]\n')
    done = subprocess.run([sys.executable, "-m", "schemathesis.cli", "--config-file", "schemathesis.toml", "run",
                           "oip-v2.yaml", "--url", server, "--checks", "all", "--max-examples", "100",
                           "--generation-deterministic"], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    summary = done.stdout[done.stdout.find("SUMMARY"):]
    assert done.returncode == 0, done.stdout[-4000:]
    tested = re.search(r"(\d+) generated, (\d+) passed", summary)
    assert tested is not None, summary
    assert tested[1] == tested[2]
    assert int(tested[1]) >= 100
