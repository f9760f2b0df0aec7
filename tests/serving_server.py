"""A deployable bundle and the real model server over HTTP on loopback, for the serving tests."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.conftest import REPO_ROOT, TINY_CLASSES, free_port

SIZE, TEMPERATURE, NAME = 16, 1.7, "tiny"


def make_bundle(folder: Path, tiny_digits: Path) -> Path:
    """A deployable bundle as export + dependability leave it: ONNX, preprocessing, temperature, OOD threshold."""
    import torch

    from vision.compression.onnx import export_onnx, predict, session
    from vision.data.dataset import load_split
    from vision.dependability.ood import logit_scores, threshold_at_tpr
    from vision.training.model import ModelConfig, build_model

    torch.manual_seed(0)
    export_onnx(build_model(ModelConfig("resnet10t", TINY_CLASSES, SIZE)).eval(), SIZE, folder / "model.onnx")
    val = load_split(tiny_digits / "ingest", tiny_digits / "split.csv", "val", TINY_CLASSES, SIZE)
    threshold = threshold_at_tpr(logit_scores("energy", predict(session(folder / "model.onnx"), val.images)), 0.5)
    (folder / "preprocess.json").write_text(json.dumps({
        "model_file": "model.onnx", "input_name": "input", "output_name": "logits", "features_name": "features",
        "input_size_px": SIZE, "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5], "classes": TINY_CLASSES,
        "execution_provider": "CPUExecutionProvider"}))
    (folder / "serving.json").write_text(json.dumps({"temperature": TEMPERATURE, "ood": {
        "detector": "energy", "threshold": threshold, "tpr": 0.5, "state": {}}}))
    return folder


@dataclass
class Server:
    url: str
    process: subprocess.Popen
    log: Path


@contextmanager
def running_server(bundle: Path, *extra: str, host: str = "127.0.0.1") -> Iterator[Server]:
    """`python -m serving` on a free port; yields once /v2/health/ready answers 200."""
    port = free_port()
    log = bundle.parent / f"server-{port}.log"  # a file, not a pipe: a full pipe would block the server's logging
    with log.open("w") as output:
        process = subprocess.Popen([sys.executable, "-m", "serving", "--model_name", NAME, "--model_dir",
                                    str(bundle), "--host", host, "--http_port", str(port), *extra], cwd=REPO_ROOT,
                                   stdout=output, stderr=subprocess.STDOUT)
    url = f"http://{host}:{port}"
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"the model server exited:\n{log.read_text()}")
            try:
                if httpx.get(f"{url}/v2/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.3)
        else:
            raise RuntimeError("the model server was not ready within 90 s")
        yield Server(url, process, log)
    finally:
        process.terminate()
        process.wait(timeout=30)


def health_latencies_during(url: str, heavy: Callable[[], httpx.Response]
                            ) -> tuple[httpx.Response, list[float], float]:
    """Run `heavy` (a slow request) on a thread and probe /v2/health/live every 50 ms until it returns: its
    response, how long each probe took, and how long the heavy request took (a blocked event loop would make a
    probe wait about that long)."""
    result: dict[str, httpx.Response] = {}
    worker = threading.Thread(target=lambda: result.update(r=heavy()))
    started = time.perf_counter()
    worker.start()
    time.sleep(0.3)
    latencies = []
    while worker.is_alive():
        begin = time.perf_counter()
        assert httpx.get(f"{url}/v2/health/live", timeout=5).status_code == 200
        latencies.append(time.perf_counter() - begin)
        time.sleep(0.05)
    worker.join()
    return result["r"], latencies, time.perf_counter() - started
