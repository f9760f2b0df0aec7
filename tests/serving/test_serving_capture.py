"""serving.capture over real HTTP: the requests the model was unsure of land in the capture store (a local
folder, and the loopback S3 server), the size and rate limits hold, retention deletes the oldest, nothing is
captured when the spec leaves capture off, and `autodl captures fetch` brings captures into the pool."""

from __future__ import annotations

import base64
import hashlib
import io
import json
from collections.abc import Callable, Sized
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

from serving.capture import Capturer, CaptureSettings, LocalStore, classification_reason, detection_reason
from tests.serving_server import NAME, make_bundle, running_server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def bundle(tiny_digits: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_bundle(tmp_path_factory.mktemp("bundle"), tiny_digits)


def png(seed: int, side: int = 16) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (side, side, 3), dtype=np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


def infer(url: str, image: bytes) -> dict:
    encoded = base64.b64encode(image).decode()
    body = {"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1], "data": [encoded]}]}
    response = httpx.post(f"{url}/v2/models/{NAME}/infer", json=body, timeout=30)
    assert response.status_code == 200, response.text
    return {o["name"]: o["data"] for o in response.json()["outputs"]}


def captured(folder: Path) -> dict[str, dict]:
    """sha256 of each captured image -> its record."""
    records = {}
    for record_file in sorted(folder.rglob("*.json")):
        record = json.loads(record_file.read_text())
        [image] = [p for p in record_file.parent.glob(record_file.stem + ".*") if p.suffix != ".json"]
        assert hashlib.sha256(image.read_bytes()).hexdigest() == record["sha256"]
        records[record["sha256"]] = record
    return records


def settings(destination: str, **limits: object) -> str:
    return json.dumps({"destination": destination, **limits})


def test_low_margin_and_abstained_requests_land_in_a_local_folder_within_the_limits(bundle: Path,
                                                                                     tmp_path: Path) -> None:
    store = tmp_path / "captures"
    # every answer has a top-two gap <= 1: all are "low margin"; at most 3 a minute; PNGs over 3,000 bytes refused
    config = settings(str(store), max_margin=1.0, max_per_minute=3, max_image_bytes=3000)
    with running_server(bundle, "--capture", config) as server:
        large = png(99, side=64)
        assert len(large) > 3000
        infer(server.url, large)
        sent = [png(seed) for seed in range(5)]
        for image in sent:
            infer(server.url, image)
        httpx.get(f"{server.url}/v2/health/ready", timeout=5)
        records = _wait_for(lambda: captured(store), 3)
    assert set(records) == {hashlib.sha256(image).hexdigest() for image in sent[:3]}  # the rate limit held
    for record in records.values():
        assert record["reason"] in ("abstained", "low_margin")
        assert record["model_version"].startswith(f"{NAME}:sha256-")
        assert set(record["scores"]) <= {"0", "1", "7"}
        assert "ood_score" in record
        assert record["captured_at"].endswith("Z")


def test_abstentions_only_and_nothing_when_capture_is_off(bundle: Path, tmp_path: Path, tiny_digits: Path) -> None:
    store = tmp_path / "abstained"
    rows = [line.split(",") for line in (tiny_digits / "split.csv").read_text().splitlines()[1:]]
    sent = [(tiny_digits / "ingest" / path).read_bytes() for path, _, split in rows if split == "test"]
    with running_server(bundle, "--capture", settings(str(store), max_margin=0.0)) as server:
        answers = [infer(server.url, image) for image in sent]
        abstained = {hashlib.sha256(image).hexdigest() for image, answer in zip(sent, answers, strict=True)
                     if answer["abstained"][0]}
        records = _wait_for(lambda: captured(store), len(abstained))
    assert abstained, "the bundle's OOD threshold (TPR 0.5 on validation) makes some test images abstain"
    assert len(abstained) < len(sent)
    assert set(records) == abstained
    assert {r["reason"] for r in records.values()} == {"abstained"}
    untouched = tmp_path / "off"
    untouched.mkdir()
    with running_server(bundle) as server:  # the spec's serving.capture left unset
        for image in sent:
            infer(server.url, image)
    assert not any(untouched.rglob("*"))
    assert not any(bundle.rglob("*.json.tmp"))


def test_captures_go_to_the_loopback_s3_server_and_are_fetched_into_the_pool(bundle: Path, s3_bucket: str,
                                                                             tmp_path: Path) -> None:
    import boto3

    from core.spec import ProjectSpec
    from ops.captures import fetch_for
    from vision.data.imageio import PixelLimits
    from vision.data.sources import RepoFiles, SourceStats
    from vision.loop.pool import iter_pool

    destination = f"s3://{s3_bucket}/tiny/captures"
    sent = [png(seed) for seed in range(30, 34)]
    with running_server(bundle, "--capture", settings(destination, max_margin=1.0)) as server:
        for image in sent:
            infer(server.url, image)
        keys = _wait_for(lambda: [o["Key"] for o in boto3.client("s3").list_objects_v2(
            Bucket=s3_bucket, Prefix="tiny/captures/").get("Contents", [])], 2 * len(sent))
    assert len([k for k in keys if k.endswith(".png")]) == len(sent)
    spec = ProjectSpec.model_validate({
        "name": "tiny", "classes": ["0", "1", "7"], "data": {"sources": [{"kind": "sklearn_digits"}]},
        "serving": {"capture": {"destination": destination}},
        "active_learning": {"pool": [{"kind": "captures", "path": "data/captures"}]}}, strict=False)
    done, target = fetch_for(spec, tmp_path)
    assert len(done.copied) == 2 * len(sent)
    again, _ = fetch_for(spec, tmp_path)
    assert (len(again.copied), again.already_there) == (0, 2 * len(sent))
    pool = list(iter_pool(spec.active_learning.pool[0], tmp_path, RepoFiles(tmp_path.resolve(), PixelLimits()), 0.0,
                          SourceStats()))
    assert sorted(hashlib.sha256(item.read().tobytes()).hexdigest() for item in pool) == sorted(
        hashlib.sha256(np.asarray(Image.open(io.BytesIO(image))).tobytes()).hexdigest() for image in sent)
    assert {item.meta["capture"]["reason"] for item in pool} <= {"abstained", "low_margin"}
    assert target == tmp_path / "data/captures"


def test_retention_deletes_the_expired_and_the_oldest_beyond_the_limit(tmp_path: Path) -> None:
    import os

    base = 1_000_000.0
    clock = [base]
    capturer = Capturer(CaptureSettings(str(tmp_path), max_stored=2, retention_days=1), LocalStore(tmp_path), "m:1",
                        clock=lambda: clock[0])
    for step in range(4):
        clock[0] = base + step * 10
        assert capturer.offer(png(step), {"reason": "abstained"})
        capturer.flush()
    groups = sorted({p.with_suffix("") for p in tmp_path.rglob("*") if p.is_file()})
    assert len(groups) == 4
    for step, group in enumerate(groups):  # the store's own clock is the file time: capture i at base + 10 i
        for path in group.parent.glob(group.name + ".*"):
            os.utime(path, (base + step * 10, base + step * 10))
    capturer.prune(now=base + 86_400 + 5)  # capture 0 is past the day; of 1..3 the 2 newest stay
    left = sorted({p.with_suffix("") for p in tmp_path.rglob("*") if p.is_file()})
    assert left == groups[2:]
    assert len(list(tmp_path.rglob("*.json"))) == 2


def test_capture_reasons() -> None:
    on = CaptureSettings("x", abstained=True, max_margin=0.2)
    assert classification_reason(np.array([0.5, 0.35, 0.15]), False, on) == "low_margin"
    assert classification_reason(np.array([0.9, 0.05, 0.05]), False, on) is None
    assert classification_reason(np.array([0.9, 0.05, 0.05]), True, on) == "abstained"
    off = CaptureSettings("x", abstained=False, max_margin=0.0)
    assert classification_reason(np.array([0.9, 0.05, 0.05]), True, off) is None
    assert detection_reason(np.array([0.9, 0.55]), False, 0.5, on) == "low_margin"
    assert detection_reason(np.array([0.9, 0.75]), False, 0.5, on) is None


def _wait_for(read: Callable[[], Sized], count: int, timeout_s: float = 20.0) -> Any:
    """Poll `read` until it finds `count` things (captures are written in the background)."""
    import time

    deadline = time.monotonic() + timeout_s
    found = read()
    while len(found) < count and time.monotonic() < deadline:
        time.sleep(0.2)
        found = read()
    time.sleep(0.5)  # anything beyond `count` would have landed by now too
    return read()
