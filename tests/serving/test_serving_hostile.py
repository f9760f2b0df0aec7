"""The model server against hostile and unusual requests, over real HTTP on loopback: no management
endpoints, readiness that tells the truth, decompression bombs refused before decoding with bounded memory,
an event loop that keeps answering probes, a 4xx with a short JSON error for every malformed request, and
the clients people actually use (tritonclient, curl-style V1)."""

from __future__ import annotations

import base64
import io
import json
import struct
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.hostile import bomb_png, gradient16_png
from tests.serving_server import NAME, SIZE, health_latencies_during, make_bundle, running_server

pytestmark = pytest.mark.slow
MEMORY_LIMIT_BYTES = 1024**3
"""The predictor's memory limit in the generated manifests (1Gi)."""


@pytest.fixture(scope="module")
def bundle(tiny_digits: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_bundle(tmp_path_factory.mktemp("hostile-bundle"), tiny_digits)


@pytest.fixture(scope="module")
def server(bundle: Path):
    with running_server(bundle) as running:
        yield running


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


DIGIT = _png(Image.fromarray(np.random.default_rng(0).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)))


def _bytes_input(*images: bytes) -> dict:
    return {"inputs": [{"name": "image", "datatype": "BYTES", "shape": [len(images)],
                        "data": [base64.b64encode(i).decode() for i in images]}]}


def _infer(url: str, body: dict | bytes, headers: dict[str, str] | None = None) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(f"{url}/v2/models/{NAME}/infer", content=content,
                      headers={"content-type": "application/json", **(headers or {})}, timeout=60)


def _assert_short_4xx(response: httpx.Response, status: int = 400) -> str:
    assert response.status_code == status, (response.status_code, response.text[:300])
    assert len(response.content) < 1024, len(response.content)
    return response.json()["error"]


def _peak_rss_bytes(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM"))) * 1024


# 1. Management endpoints and readiness ------------------------------------------------------------------------

@pytest.mark.parametrize(("method", "path"), [("POST", f"/v2/repository/models/{NAME}/unload"),
                                              ("POST", f"/v2/repository/models/{NAME}/load"),
                                              ("POST", "/v2/repository/index"), ("GET", "/docs"),
                                              ("GET", "/openapi.json"), ("POST", f"/v1/models/{NAME}:explain")])
def test_no_management_endpoint_exists(server, method: str, path: str) -> None:
    response = httpx.request(method, f"{server.url}{path}", timeout=10)
    assert response.status_code in (404, 405), (path, response.status_code)
    assert "error" in response.json()
    assert _infer(server.url, _bytes_input(DIGIT)).status_code == 200
    assert httpx.get(f"{server.url}/v2/health/ready").status_code == 200


def test_readiness_is_false_when_the_model_cannot_answer(bundle: Path) -> None:
    from fastapi.testclient import TestClient

    from serving.app import ServingConfig, create_app

    app = create_app(ServingConfig(NAME, (str(bundle),)))
    with TestClient(app) as client:
        assert client.get("/v2/health/ready").status_code == 200
        app.state.model.unload()
        assert client.get("/v2/health/ready").status_code == 503
        assert client.get("/v2/health/live").status_code == 200
        assert client.post(f"/v2/models/{NAME}/infer", json=_bytes_input(DIGIT)).status_code == 503


# 2. Binding -------------------------------------------------------------------------------------------------

def test_the_server_listens_only_where_it_says(bundle: Path) -> None:
    with running_server(bundle) as running:
        port = running.url.rsplit(":", 1)[1]
        assert httpx.get(f"{running.url}/v2/health/live").status_code == 200
        with pytest.raises(httpx.ConnectError):  # 127.0.0.2 reaches a 0.0.0.0 listener, not a 127.0.0.1 one
            httpx.get(f"http://127.0.0.2:{port}/v2/health/live", timeout=5)


# 3. Decompression bombs -------------------------------------------------------------------------------------

def test_decompression_bombs_are_refused_before_decoding_with_memory_far_below_the_limit(server) -> None:
    before = _peak_rss_bytes(server.process.pid)
    small_bomb, big_bomb = bomb_png(13_370, 13_370), bomb_png(30_000, 30_000)
    assert len(small_bomb) < 30_000
    for bomb, size in ((small_bomb, "13370x13370"), (big_bomb, "30000x30000")):
        error = _assert_short_4xx(_infer(server.url, _bytes_input(bomb)))
        assert f"image is {size}" in error
        assert "megapixels" in error
    four = _infer(server.url, _bytes_input(*[bomb_png(12_000, 12_000)] * 4))
    assert "image is 12000x12000" in _assert_short_4xx(four)
    claimed = {"inputs": [{"name": "x", "datatype": "UINT8", "shape": [1, 20_000, 20_000, 3], "data": [0, 0, 0]}]}
    _assert_short_4xx(_infer(server.url, claimed))
    peak = _peak_rss_bytes(server.process.pid)
    print(f"server peak RSS: {before / 2**20:.0f} MiB before, {peak / 2**20:.0f} MiB after the bombs")
    assert peak < MEMORY_LIMIT_BYTES / 2, peak  # an idle server is about 260 MiB; one decoded bomb alone is 900 MB
    assert peak - before < 64 * 2**20


def test_the_pixel_limit_is_configurable(bundle: Path) -> None:
    image = _png(Image.new("RGB", (300, 200)))
    with running_server(bundle, "--max_image_pixels", "50000") as running:
        assert "the limit is 0.05 megapixels" in _assert_short_4xx(_infer(running.url, _bytes_input(image)))
        assert _infer(running.url, _bytes_input(DIGIT)).status_code == 200


# 4. The event loop --------------------------------------------------------------------------------------------

def test_health_answers_fast_while_a_heavy_request_runs(server) -> None:
    heavy = _bytes_input(*[bomb_png(6_000, 6_000)] * 3)  # 36 MP each: allowed, and slow to decode and resize
    response, latencies, heavy_seconds = health_latencies_during(server.url, lambda: _infer(server.url, heavy))
    assert response.status_code == 200, response.text[:300]
    assert len(latencies) >= 3, "the heavy request finished before health was probed"
    # a blocked event loop holds a probe for about the whole heavy request; an answered probe on a busy 2-core
    # machine takes tens of milliseconds
    assert max(latencies) < min(0.25, heavy_seconds / 4), (latencies, heavy_seconds)


# 5. Malformed requests: a short 4xx, never a 5xx, never an echo ----------------------------------------------

def _binary(header: dict, payload: bytes, length: str | None = None) -> tuple[bytes, dict[str, str]]:
    text = json.dumps(header).encode()
    return text + payload, {"inference-header-content-length": length if length is not None else str(len(text)),
                            "content-type": "application/octet-stream"}


def _bytes_tensor(*elements: bytes) -> bytes:
    return b"".join(struct.pack("<I", len(e)) + e for e in elements)


BINARY_CASES = {
    "non-numeric header length": lambda: _binary({"inputs": []}, b"", length="12abc"),
    "header length past the body": lambda: _binary({"inputs": []}, b"", length="99999"),
    "negative binary_data_size": lambda: _binary({"inputs": [{"name": "x", "datatype": "UINT8", "shape": [1, 2, 2, 3],
                                                              "parameters": {"binary_data_size": -12}}]}, bytes(12)),
    "size not a multiple of the type": lambda: _binary({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 3],
                                                                    "parameters": {"binary_data_size": 7}}]}, bytes(7)),
    "bad length prefix": lambda: _binary({"inputs": [{"name": "x", "datatype": "BYTES", "shape": [1],
                                                      "parameters": {"binary_data_size": 8}}]},
                                         struct.pack("<I", 1_000_000) + b"abcd"),
    "leftover binary bytes": lambda: _binary({"inputs": [{"name": "x", "datatype": "BYTES", "shape": [1],
                                                          "parameters": {"binary_data_size": 8}}]},
                                             _bytes_tensor(b"abcd") + b"tail"),
}


@pytest.mark.parametrize("case", sorted(BINARY_CASES))
def test_malformed_binary_extension_requests_get_a_400(server, case: str) -> None:
    body, headers = BINARY_CASES[case]()
    _assert_short_4xx(httpx.post(f"{server.url}/v2/models/{NAME}/infer", content=body, headers=headers, timeout=30))


JSON_CASES = {
    "uint8 above 255": {"inputs": [{"name": "x", "datatype": "UINT8", "shape": [1, 2, 2, 3], "data": [300] * 12}]},
    "uint8 below 0": {"inputs": [{"name": "x", "datatype": "UINT8", "shape": [1, 2, 2, 3], "data": [-1] * 12}]},
    "uint8 fractions": {"inputs": [{"name": "x", "datatype": "UINT8", "shape": [1, 2, 2, 3], "data": [0.5] * 12}]},
    "negative shape": {"inputs": [{"name": "x", "datatype": "BYTES", "shape": [-1], "data": ["aGk="]}]},
    "string shape": {"inputs": [{"name": "x", "datatype": "BYTES", "shape": ["1"], "data": ["aGk="]}]},
    "boolean shape": {"inputs": [{"name": "x", "datatype": "BYTES", "shape": [True], "data": ["aGk="]}]},
    "unknown datatype": {"inputs": [{"name": "x", "datatype": "IMAGE", "shape": [1], "data": ["aGk="]}]},
    "numbers for BYTES": {"inputs": [{"name": "x", "datatype": "BYTES", "shape": [1], "data": [5]}]},
    "unknown output": {**_bytes_input(DIGIT), "outputs": [{"name": "nope"}]},
    "id not a string": {**_bytes_input(DIGIT), "id": 5},
    "not an object": [1, 2, 3],
}


@pytest.mark.parametrize("case", sorted(JSON_CASES))
def test_malformed_json_requests_get_a_400_with_an_error(server, case: str) -> None:
    _assert_short_4xx(_infer(server.url, JSON_CASES[case]))


def test_raw_non_utf8_bytes_are_refused_without_echo_in_response_or_log(server) -> None:
    junk = bytes(np.random.default_rng(1).integers(128, 256, 3 * 2**20, dtype=np.uint8))
    body, headers = _binary({"inputs": [{"name": "x", "datatype": "BYTES", "shape": [1],
                                         "parameters": {"binary_data_size": len(junk) + 4}}]}, _bytes_tensor(junk))
    response = httpx.post(f"{server.url}/v2/models/{NAME}/infer", content=body, headers=headers, timeout=30)
    assert "not a decodable image" in _assert_short_4xx(response)
    assert max(map(len, server.log.read_text(errors="replace").splitlines()), default=0) < 2200


def test_raw_image_bytes_in_the_binary_extension_are_accepted(server) -> None:
    body, headers = _binary({"inputs": [{"name": "x", "datatype": "BYTES", "shape": [2],
                                         "parameters": {"binary_data_size": 2 * 4 + 2 * len(DIGIT)}}]},
                            _bytes_tensor(DIGIT, DIGIT))
    response = httpx.post(f"{server.url}/v2/models/{NAME}/infer", content=body, headers=headers, timeout=30)
    assert response.status_code == 200, response.text[:300]
    assert {o["name"]: o["shape"] for o in response.json()["outputs"]}["label"] == [2]


# 6. Protocol conformance --------------------------------------------------------------------------------------

def test_model_metadata_describes_the_model(server, bundle: Path) -> None:
    import hashlib

    metadata = httpx.get(f"{server.url}/v2/models/{NAME}").json()
    version = "sha256-" + hashlib.sha256((bundle / "model.onnx").read_bytes()).hexdigest()[:12]
    assert metadata["versions"] == [version]
    assert {i["name"]: i["datatype"] for i in metadata["inputs"]} == {"image": "BYTES", "pixels": "UINT8",
                                                                       "input": "FP32"}
    outputs = {o["name"]: o["shape"] for o in metadata["outputs"]}
    assert outputs["probabilities"] == [-1, 3]
    assert set(outputs) == {"label", "probabilities", "ood_score", "abstained"}
    assert httpx.get(f"{server.url}/v2/models/{NAME}/versions/{version}").json() == metadata
    answer = _infer(server.url, _bytes_input(DIGIT)).json()
    assert answer["model_version"] == version


def test_a_chunked_body_over_the_limit_gets_413(bundle: Path) -> None:
    def chunks():
        for _ in range(40):
            yield b"x" * 65536

    with running_server(bundle, "--max_body_mb", "1") as running:
        response = httpx.post(f"{running.url}/v2/models/{NAME}/infer", content=chunks(), timeout=30)
        assert response.status_code == 413
        assert "larger than" in response.json()["error"]
        assert _infer(running.url, _bytes_input(DIGIT)).status_code == 200


# 7. Common clients ----------------------------------------------------------------------------------------------

def test_json_without_a_content_type_is_accepted(server) -> None:
    v2 = httpx.post(f"{server.url}/v2/models/{NAME}/infer", content=json.dumps(_bytes_input(DIGIT)).encode())
    assert v2.status_code == 200, v2.text[:300]
    body = json.dumps({"instances": [{"b64": base64.b64encode(DIGIT).decode()}]})
    for headers in ({}, {"content-type": "application/x-www-form-urlencoded"}):  # curl -d sends the second
        v1 = httpx.post(f"{server.url}/v1/models/{NAME}:predict", content=body.encode(), headers=headers)
        assert v1.status_code == 200, (headers, v1.text[:300])


def test_deep_images_are_rescaled_like_ingest_does(server) -> None:
    from runtime.images import PixelLimits, decode_rgb

    deep, pixels = gradient16_png(SIZE)
    eight_bit = np.asarray(decode_rgb(deep, PixelLimits()))
    assert np.abs(eight_bit[..., 0].astype(int) - np.rint(pixels / 257)).max() == 0
    same = _infer(server.url, _bytes_input(deep)).json()["outputs"]
    reference = _infer(server.url, _bytes_input(_png(Image.fromarray(eight_bit)))).json()["outputs"]
    assert same == reference


def test_tritonclient_health_metadata_json_binary_and_batch(server) -> None:
    import tritonclient.http as triton

    client = triton.InferenceServerClient(server.url.removeprefix("http://"))
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready(NAME)
    assert client.get_model_metadata(NAME)["versions"]
    answers = []
    for binary in (False, True):  # JSON carries base64 text, the binary extension the PNG bytes themselves
        batch = np.array([DIGIT if binary else base64.b64encode(DIGIT)] * 3, dtype=np.object_)
        tensor = triton.InferInput("image", [len(batch)], "BYTES")
        tensor.set_data_from_numpy(batch, binary_data=binary)
        outputs = [triton.InferRequestedOutput(name, binary_data=binary) for name in ("probabilities", "label")]
        result = client.infer(NAME, [tensor], outputs=outputs)
        probabilities = result.as_numpy("probabilities")
        assert probabilities.shape == (3, 3)
        np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
        answers.append(probabilities)
    np.testing.assert_allclose(answers[0], answers[1], atol=1e-6)
    client.close()
