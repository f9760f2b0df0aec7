"""Opt-in capture of the requests the model was unsure of, for the data loop (`serving.capture` in the spec).

A captured image is what the client sent (encoded bytes as received; pixel tensors as PNG), beside a JSON
record: why (abstained or a low margin), when, the model version, the image's sha256, the OOD score and the
scores. Nothing is captured unless the spec turns it on. Captures go to a local folder or an S3 prefix;
writing happens on one background thread with a short bounded queue, so a slow store never holds a request
or the event loop: when the queue is full, or the per-minute budget is spent, or an image is larger than the
size limit, the capture is counted and dropped. Old captures are deleted after `retention_days`, and the
oldest beyond `max_stored`, at most once a minute.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from PIL import Image

log = logging.getLogger("autodl.serving.capture")

PENDING_WRITES = 32
"""Captures waiting for the writer at most; more are dropped (counted as `queue_full`)."""
PRUNE_EVERY_S = 60.0
FORMATS = {"PNG": "png", "JPEG": "jpg", "GIF": "gif", "BMP": "bmp", "TIFF": "tiff", "WEBP": "webp", "PPM": "ppm"}


@dataclass(frozen=True)
class CaptureSettings:
    """The spec's `serving.capture` (core.spec.deployment.Capture), as the server receives it."""

    destination: str
    abstained: bool = True
    max_margin: float = 0.1
    max_image_bytes: int = 5_000_000
    max_per_minute: int = 60
    max_stored: int = 10_000
    retention_days: int = 30

    @classmethod
    def from_json(cls, text: str) -> CaptureSettings:
        raw = json.loads(text)
        return cls(**{k: raw[k] for k in cls.__dataclass_fields__ if k in raw})

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


class Store(Protocol):
    def put(self, key: str, data: bytes) -> None: ...
    def list(self) -> list[tuple[str, float]]: ...
    def delete(self, keys: list[str]) -> None: ...


class LocalStore:
    """A folder on the server's machine; each file written whole (temporary name, then renamed)."""

    def __init__(self, root: Path):
        self.root = root

    def put(self, key: str, data: bytes) -> None:
        target = self.root / key
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, scratch = tempfile.mkstemp(prefix=".capture.", dir=target.parent)
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.replace(scratch, target)

    def list(self) -> list[tuple[str, float]]:
        if not self.root.is_dir():
            return []
        return [(p.relative_to(self.root).as_posix(), p.stat().st_mtime) for p in self.root.rglob("*")
                if p.is_file() and not p.name.startswith(".")]

    def delete(self, keys: list[str]) -> None:
        for key in keys:
            (self.root / key).unlink(missing_ok=True)


class S3Store:
    """`s3://bucket/prefix`: credentials and endpoint from the environment (the predictor's service account, or
    AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY and AWS_ENDPOINT_URL for an S3-compatible store)."""

    def __init__(self, uri: str):
        import boto3

        bucket, _, prefix = uri.removeprefix("s3://").partition("/")
        self.bucket, self.prefix = bucket, prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.client = boto3.client("s3", endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None)

    def put(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self.prefix + key, Body=data)

    def list(self) -> list[tuple[str, float]]:
        found = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix):
            found.extend((item["Key"][len(self.prefix):], item["LastModified"].timestamp())
                         for item in page.get("Contents", []))
        return found

    def delete(self, keys: list[str]) -> None:
        for start in range(0, len(keys), 1000):
            chunk = [{"Key": self.prefix + k} for k in keys[start:start + 1000]]
            self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": chunk, "Quiet": True})


def open_store(destination: str) -> Store:
    return S3Store(destination) if destination.startswith("s3://") else LocalStore(Path(destination))


class Capturer:
    """Decides nothing about the model: it is offered (image, record) pairs and keeps what its limits allow."""

    def __init__(self, settings: CaptureSettings, store: Store, model_version: str,
                 clock: Any = time.time) -> None:
        self.settings, self.store, self.model_version, self.clock = settings, store, model_version, clock
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._window: list[float] = []
        self._pending = 0
        self._last_prune = 0.0
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="capture")

    def offer(self, original: bytes | np.ndarray, record: dict[str, Any]) -> bool:
        """Queue one capture if the limits allow; True when queued. Cheap: the caller may be the event loop."""
        now = self.clock()
        with self._lock:
            self._window = [t for t in self._window if now - t < 60.0]
            if len(self._window) >= self.settings.max_per_minute:
                self.counts["rate_limited"] += 1
                return False
            if isinstance(original, bytes | bytearray) and len(original) > self.settings.max_image_bytes:
                self.counts["too_large"] += 1
                return False
            if self._pending >= PENDING_WRITES:
                self.counts["queue_full"] += 1
                return False
            self._window.append(now)
            self._pending += 1
        self._writer.submit(self._write, original, record, now)
        return True

    def _write(self, original: bytes | np.ndarray, record: dict[str, Any], now: float) -> None:
        try:
            data, extension = _encoded(original)
            if len(data) > self.settings.max_image_bytes:
                self.counts["too_large"] += 1
                return
            digest = hashlib.sha256(data).hexdigest()
            stamp = time.strftime("%Y-%m-%dT%H%M%S", time.gmtime(now))
            key = f"{stamp[:10]}/{stamp}-{int(now * 1e6) % 1_000_000:06d}-{digest[:12]}"
            full = {**record, "sha256": digest, "model_version": self.model_version,
                    "captured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))}
            self.store.put(f"{key}.{extension}", data)
            self.store.put(f"{key}.json", json.dumps(full, sort_keys=True).encode())
            self.counts["captured"] += 1
            if now - self._last_prune >= PRUNE_EVERY_S:
                self._last_prune = now
                self.prune(now)
        except Exception as exc:  # a failing store must never reach a request: log, count, go on
            self.counts["failed"] += 1
            log.warning("capture not written: %s: %s", type(exc).__name__, str(exc)[:300])
        finally:
            with self._lock:
                self._pending -= 1

    def prune(self, now: float) -> None:
        """Delete captures older than the retention, then the oldest beyond `max_stored` (image and record
        together: they share a name)."""
        groups: dict[str, list[tuple[str, float]]] = {}
        for key, modified in self.store.list():
            groups.setdefault(key.rsplit(".", 1)[0], []).append((key, modified))
        ordered = sorted(groups.items(), key=lambda item: (min(m for _, m in item[1]), item[0]))
        limit = now - self.settings.retention_days * 86_400
        expired = [g for g in ordered if min(m for _, m in g[1]) < limit]
        kept = [g for g in ordered if min(m for _, m in g[1]) >= limit]
        expired += kept[:max(0, len(kept) - self.settings.max_stored)]
        if expired:
            self.store.delete([key for _, files in expired for key, _ in files])
            self.counts["deleted"] += len(expired)

    def flush(self, timeout_s: float = 10.0) -> None:
        """Wait until queued captures are written (tests, shutdown)."""
        deadline = time.monotonic() + timeout_s
        while self._pending and time.monotonic() < deadline:
            time.sleep(0.01)


def _encoded(original: bytes | np.ndarray) -> tuple[bytes, str]:
    """Encoded bytes as received (with the extension of their format), or uint8 pixels as PNG."""
    if isinstance(original, np.ndarray):
        buffer = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(original, dtype=np.uint8)).save(buffer, format="PNG")
        return buffer.getvalue(), "png"
    with Image.open(io.BytesIO(original)) as image:  # the header only: the server decoded it already
        return bytes(original), FORMATS.get(image.format or "", "img")


def classification_reason(probabilities: np.ndarray, abstained: bool, settings: CaptureSettings) -> str | None:
    """Why one classified image is worth keeping, or None."""
    if abstained:
        return "abstained" if settings.abstained else None
    top_two = np.sort(probabilities)[-2:]
    return "low_margin" if top_two[1] - top_two[0] <= settings.max_margin else None


def detection_reason(scores: np.ndarray, abstained: bool, threshold: float, settings: CaptureSettings) -> str | None:
    """Why one detector's image is worth keeping: abstained, or a detection scored just above the threshold
    (within `max_margin`), where the answer would flip with a little more doubt."""
    if abstained:
        return "abstained" if settings.abstained else None
    close = (scores >= threshold) & (scores < threshold + settings.max_margin)
    return "low_margin" if close.any() else None


def tagging_reason(probabilities: np.ndarray, thresholds: np.ndarray, abstained: bool, settings: CaptureSettings
                   ) -> str | None:
    """Why one tagged image is worth keeping: abstained, or a tag's calibrated probability within `max_margin` of
    its threshold (either side), where the tag would come or go with a little more doubt."""
    if abstained:
        return "abstained" if settings.abstained else None
    return "low_margin" if (np.abs(probabilities - thresholds) <= settings.max_margin).any() else None
