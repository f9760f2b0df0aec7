"""How a detect-then-classify cascade should be served: one predictor holding both ONNX files, or two predictors
chained the way a KServe InferenceGraph chains them, measured side by side in one run.

(a) one model server loads the cascade's release (runtime.cascade.CascadeArtifact): one request per image; the
    image is decoded once and the detections are cropped and classified in the same process;
(b) two model servers (the detector's bundle, the classifier's bundle) and a client that does what a graph's
    router and a crop step would do: send the image to the detector, cut the returned boxes from the image,
    encode the crops and send them to the classifier in one request. A real InferenceGraph adds its router's own
    hop per step on top of this, so (b) is a lower bound of the graph's latency.
Both give the same boxes and classes (checked before timing). The networks have the shapes of a small pair (an
EfficientNet-Lite0 FCOS detector at 160 px, a ResNet-10t classifier at 32 px) with untrained weights: latency
depends on the shapes and the box count, not on what the weights learned; every image gets `--boxes` detections
(score threshold 0). Rounds alternate (a) and (b) so load drifts hit both alike.
Usage: python benchmarks/cascade_serving.py [--images 24] [--rounds 5] [--boxes 4]
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import statistics
import tempfile
import time
from pathlib import Path

import _digits  # noqa: F401  (puts the repository on sys.path)
import httpx
import numpy as np
from _servers import model_server
from PIL import Image

DETECTOR_WH, CLASSIFIER_PX, CLASSES = (160, 160), 32, [str(d) for d in range(10)]


def _bundles(folder: Path) -> Path:
    """A cascade release (detector/, classifier/, cascade.json) of untrained networks of the pair's shapes."""
    import torch

    from vision.compression.onnx import export_onnx
    from vision.detection.model import Detector, DetectorConfig
    from vision.detection.onnx import export_detector
    from vision.training.model import ModelConfig, build_model

    torch.manual_seed(0)
    release = folder / "release"
    config = DetectorConfig("tf_efficientnet_lite0", ("digit",), DETECTOR_WH, (8, 16, 32), fpn_channels=64,
                            head_convs=1)
    export_detector(Detector(config).eval(), release / "detector" / "model.onnx")
    (release / "detector" / "preprocess.json").write_text(json.dumps({
        "input_size_px": DETECTOR_WH[0], "mean": [0.5] * 3, "std": [0.5] * 3, "classes": ["digit"],
        "output_name": "class_logits", "task": "detection",
        "detection": {"input_wh": list(DETECTOR_WH), "strides": [8, 16, 32], "score_threshold": 0.0, "nms_iou": 0.6,
                      "max_detections": 100, "confidence_threshold": 0.0}}))
    export_onnx(build_model(ModelConfig("resnet10t", CLASSES, CLASSIFIER_PX)).eval(), CLASSIFIER_PX,
                release / "classifier" / "model.onnx")
    (release / "classifier" / "preprocess.json").write_text(json.dumps({
        "input_size_px": CLASSIFIER_PX, "mean": [0.5] * 3, "std": [0.5] * 3, "classes": CLASSES}))
    (release / "cascade.json").write_text(json.dumps({"classes": CLASSES, "padding": 0.15}))
    return release


def _images(count: int) -> list[bytes]:
    from skimage import data

    photo = np.asarray(Image.fromarray(data.astronaut()).resize((320, 320)))
    rng, out = np.random.default_rng(0), []
    for _ in range(count):
        top, left = rng.integers(0, 160, 2)
        buffer = io.BytesIO()
        Image.fromarray(photo[top:top + 160, left:left + 160]).save(buffer, "PNG")
        out.append(buffer.getvalue())
    return out


def _request(images: list[bytes], boxes: int) -> dict:
    return {"inputs": [{"name": "image", "datatype": "BYTES", "shape": [len(images)],
                        "data": [base64.b64encode(i).decode() for i in images]}],
            "parameters": {"score_threshold": 0.0, "max_detections": boxes}}


def one_predictor(client: httpx.Client, url: str, image: bytes, boxes: int) -> list[str]:
    response = client.post(f"{url}/v2/models/pair/infer", json=_request([image], boxes))
    return {o["name"]: o["data"] for o in response.json()["outputs"]}["labels"]


def chained(client: httpx.Client, detector_url: str, classifier_url: str, image: bytes, boxes: int,
            padding: float) -> list[str]:
    from runtime.windows import crop_window

    found = {o["name"]: o["data"] for o in client.post(f"{detector_url}/v2/models/detector/infer",
                                                       json=_request([image], boxes)).json()["outputs"]}
    rgb = Image.open(io.BytesIO(image)).convert("RGB")
    crops = []
    for i in range(len(found["scores"])):
        box = tuple(found["boxes"][4 * i:4 * i + 4])
        buffer = io.BytesIO()
        rgb.crop(crop_window(box, rgb.width, rgb.height, padding)).save(buffer, "PNG")
        crops.append(buffer.getvalue())
    if not crops:
        return []
    named = client.post(f"{classifier_url}/v2/models/classifier/infer", json=_request(crops, boxes)).json()
    return {o["name"]: o["data"] for o in named["outputs"]}["label"]


def _timed(call, images: list[bytes]) -> list[float]:
    latencies = []
    for image in images:
        begin = time.perf_counter()
        call(image)
        latencies.append((time.perf_counter() - begin) * 1000)
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=24)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--boxes", type=int, default=4)
    args = parser.parse_args()
    images = _images(args.images)
    with tempfile.TemporaryDirectory() as scratch:
        release = _bundles(Path(scratch))
        with model_server("pair", [release], 1) as pair, \
                model_server("detector", [release / "detector"], 1) as detector, \
                model_server("classifier", [release / "classifier"], 1) as classifier, \
                httpx.Client(timeout=60) as client:
            one = lambda image: one_predictor(client, pair, image, args.boxes)  # noqa: E731
            two = lambda image: chained(client, detector, classifier, image, args.boxes, 0.15)  # noqa: E731
            assert [one(i) for i in images[:4]] == [two(i) for i in images[:4]], "both setups answer alike"
            times: dict[str, list[float]] = {"one": [], "two": []}
            for _ in range(args.rounds):
                times["one"] += _timed(one, images)
                times["two"] += _timed(two, images)
    print(f"cascade serving: {len(images)} images of 160 px x {args.rounds} rounds, {args.boxes} boxes each, "
          "one client, servers on this machine")
    print(f"{'':<52} {'p50 ms':>8} {'p90 ms':>8} {'mean ms':>8}")
    for label, key in (("(a) one predictor holding both models", "one"),
                       ("(b) detector + classifier predictors, crops sent", "two")):
        values = sorted(times[key])
        print(f"{label:<52} {statistics.median(values):>8.2f} {values[int(0.9 * (len(values) - 1))]:>8.2f} "
              f"{statistics.fmean(values):>8.2f}")
    ratio = statistics.median(times["two"]) / statistics.median(times["one"])
    print(f"chained / one predictor (p50): {ratio:.2f}x; a graph's router adds its own hop per step to (b)")


if __name__ == "__main__":
    main()
