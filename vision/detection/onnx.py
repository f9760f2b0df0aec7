"""The detector as an ONNX file: export of the raw tensor network, parity with torch on decoded detections,
and batch-1 latency with decoding and NMS included (what a served request costs)."""

from __future__ import annotations

import statistics
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch

from runtime.detections import Decoding, Detections, Letterbox, detect, detect_batch, iou_matrix
from runtime.tiling import Outputs, Run
from vision.compression.onnx import INPUT, OPSET
from vision.data.dataset import to_tensor
from vision.detection.data import DetectionSplit, letterbox, read_rgb
from vision.detection.metrics import mean_average_precision
from vision.detection.model import OUTPUT_NAMES, Detector
from vision.detection.sliced import sliced_split

BATCH = 16
PARITY_IOU = 0.99
PARITY_SHARE = 0.99
PARITY_MAP_POINTS = 0.002
"""Export parity: >= 99% of the torch detections above the confidence threshold found again by the file (same
class, IoU >= 0.99) and mAP50-95 within 0.2 points."""


def export_detector(model: Detector, path: Path) -> None:
    """fp32 ONNX (opset 17) of Detector.forward with a dynamic batch axis, checked by `onnx.checker`; the
    TorchScript-based exporter for byte-identical files (see vision.compression.onnx.export_onnx)."""
    width, height = model.config.input_wh
    path.parent.mkdir(parents=True, exist_ok=True)
    axes = {name: {0: "batch"} for name in (INPUT, *OUTPUT_NAMES)}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", ".*legacy TorchScript-based ONNX export.*", DeprecationWarning)
        warnings.filterwarnings("ignore", "The feature will be removed.*", DeprecationWarning)
        torch.onnx.export(model.eval(), (torch.zeros(1, 3, height, width),), str(path), opset_version=OPSET,
                          dynamo=False, input_names=[INPUT], output_names=list(OUTPUT_NAMES), dynamic_axes=axes)
    onnx.checker.check_model(str(path), full_check=True)


Corrupt = Callable[[np.ndarray], np.ndarray]
"""A change to letterboxed uint8 images (N x H x W x 3) that keeps every box where it is."""


def letterboxed(split: DetectionSplit, input_wh: tuple[int, int], batch: int = BATCH
                ) -> Iterator[tuple[np.ndarray, list[Letterbox]]]:
    """The split's images letterboxed into the network input, a batch at a time, with each image's fit."""
    for start in range(0, len(split), batch):
        pairs = [letterbox(read_rgb(split.root / path), input_wh) for path in split.paths[start:start + batch]]
        yield np.stack([image for image, _ in pairs]), [fit for _, fit in pairs]


def calibration_images(split: DetectionSplit, input_wh: tuple[int, int], count: int) -> np.ndarray:
    """`count` images spread over `split` (not its first few), letterboxed: what int8 calibration ranges are
    measured on."""
    chosen = split.sample(count)
    return np.concatenate([images for images, _ in letterboxed(chosen, input_wh)])


def session(path: Path, threads: int = 1) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _feed(sess: ort.InferenceSession, images: np.ndarray) -> dict[str, np.ndarray]:
    dtype = np.float16 if "float16" in sess.get_inputs()[0].type else np.float32
    return {INPUT: to_tensor(images).numpy().astype(dtype)}


@dataclass(frozen=True)
class SplitOutputs:
    """What a file says about a split: each image's detections in its own pixels, and the pooled features."""

    found: list[Detections]
    features: np.ndarray


def onnx_run(sess: ort.InferenceSession) -> Run:
    """The file as runtime.tiling's `Run` (uint8 batch in, float32 outputs out)."""
    def run(images: np.ndarray) -> Outputs:
        logits, regression, centerness, pooled = (np.asarray(o, np.float32)
                                                  for o in sess.run(list(OUTPUT_NAMES), _feed(sess, images)))
        return logits, regression, centerness, pooled

    return run


def run_split(sess: ort.InferenceSession, split: DetectionSplit, decoding: Decoding,
              corrupt: Corrupt | None = None) -> SplitOutputs:
    """Each image's detections in its own pixels (tile by tile for a tiled detector) and its pooled features (of
    the whole image letterboxed)."""
    if decoding.tiling is not None:
        return SplitOutputs(*sliced_split(split, onnx_run(sess), decoding, corrupt))
    found: list[Detections] = []
    features: list[np.ndarray] = []
    for images, fits in letterboxed(split, decoding.input_wh):
        outputs = sess.run(list(OUTPUT_NAMES), _feed(sess, corrupt(images) if corrupt else images))
        logits, regression, centerness, pooled = (np.asarray(o, np.float32) for o in outputs)
        found.extend(detect_batch(logits, regression, centerness, decoding, fits))
        features.append(pooled)
    return SplitOutputs(found, np.concatenate(features) if features else np.zeros((0, 0), np.float32))


def run_images(sess: ort.InferenceSession, images: np.ndarray, decoding: Decoding, batch: int = BATCH) -> SplitOutputs:
    """Letterboxed uint8 images (N x H x W x 3) -> detections in input pixels and pooled features."""
    found: list[Detections] = []
    features: list[np.ndarray] = []
    for start in range(0, len(images), batch):
        outputs = sess.run(list(OUTPUT_NAMES), _feed(sess, images[start:start + batch]))
        logits, regression, centerness, pooled = (np.asarray(o, np.float32) for o in outputs)
        found.extend(detect_batch(logits, regression, centerness, decoding))
        features.append(pooled)
    return SplitOutputs(found, np.concatenate(features) if features else np.zeros((0, 0), np.float32))


def split_map(found: list[Detections], split: DetectionSplit, classes: list[str], max_detections: int = 100
              ) -> dict[str, float]:
    figures = mean_average_precision(found, split.boxes, split.labels, classes, max_detections)
    return {"map": max(float(figures["map"]), 0.0), "map50": max(float(figures["map50"]), 0.0)}


def matched_share(reference: list[Detections], other: list[Detections], confidence: float,
                  iou: float = PARITY_IOU) -> tuple[float, int]:
    """The share of `reference`'s detections scoring at least `confidence` that `other` found too (same class,
    IoU >= `iou`), and how many there were (share 1.0 when there were none)."""
    wanted = found = 0
    for ours, theirs in zip(reference, other, strict=True):
        keep = ours.scores >= confidence
        wanted += int(keep.sum())
        if not keep.any() or not len(theirs):
            continue
        overlap = iou_matrix(ours.boxes[keep], theirs.boxes)
        # a degenerate (zero-area) box has no IoU with anything, itself included: compare its corners instead
        equal = np.abs(ours.boxes[keep][:, None, :] - theirs.boxes[None, :, :]).max(axis=2) <= 1e-3
        same = ours.labels[keep][:, None] == theirs.labels[None, :]
        found += int((((overlap >= iou) | equal) & same).any(axis=1).sum())
    return (found / wanted if wanted else 1.0), wanted


@dataclass(frozen=True)
class Parity:
    matched_share: float
    boxes: int
    torch_map: float
    onnx_map: float

    @property
    def holds(self) -> bool:
        return self.matched_share >= PARITY_SHARE and abs(self.torch_map - self.onnx_map) <= PARITY_MAP_POINTS

    def line(self) -> str:
        return (f"{self.matched_share:.2%} of {self.boxes} torch detections found again (same class, IoU >= "
                f"{PARITY_IOU}; needs {PARITY_SHARE:.0%}), mAP50-95 {self.torch_map:.4f} in torch vs "
                f"{self.onnx_map:.4f} in ONNX Runtime (needs within {PARITY_MAP_POINTS * 100:.1f} points)")


def parity(torch_found: list[Detections], onnx_found: list[Detections], split: DetectionSplit,
           classes: list[str], confidence: float) -> Parity:
    share, boxes = matched_share(torch_found, onnx_found, confidence)
    return Parity(round(share, 6), boxes, round(split_map(torch_found, split, classes)["map"], 6),
                  round(split_map(onnx_found, split, classes)["map"], 6))


def detector_runner(path: Path, sample: np.ndarray, decoding: Decoding, threads: int = 1) -> Callable[[], None]:
    """One batch-1 image through ONNX Runtime, decoding and NMS (`sample`: one letterboxed uint8 image, so
    decoding sees realistic detections), for vision.compression.timing."""
    sess = session(path, threads)
    feed = _feed(sess, sample[None])

    def once() -> None:
        logits, regression, centerness, _ = sess.run(list(OUTPUT_NAMES), feed)
        detect(np.asarray(logits[0], np.float32), np.asarray(regression[0], np.float32),
               np.asarray(centerness[0], np.float32), decoding)

    return once


def torch_detector_runner(model: Detector, sample: np.ndarray, decoding: Decoding) -> Callable[[], None]:
    """The same for the detector in torch eager fp32 (call under torch.set_num_threads for the thread count)."""
    x = to_tensor(sample[None])

    @torch.inference_mode()
    def once() -> None:
        logits, regression, centerness, _ = (o.numpy() for o in model.eval()(x))
        detect(logits[0], regression[0], centerness[0], decoding)

    return once


def latency_ms(path: Path, sample: np.ndarray, decoding: Decoding, threads: int = 1, runs: int = 100,
               warmup: int = 10) -> float:
    """Median batch-1 wall time of one image through ONNX Runtime, decoding and NMS."""
    return _median_ms(detector_runner(path, sample, decoding, threads), runs, warmup)


def torch_latency_ms(model: Detector, sample: np.ndarray, decoding: Decoding, threads: int = 1, runs: int = 100,
                     warmup: int = 10) -> float:
    """The same measurement for the detector in torch eager fp32: the baseline served speed is compared with."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return _median_ms(torch_detector_runner(model, sample, decoding), runs, warmup)
    finally:
        torch.set_num_threads(before)


def _median_ms(once: Callable[[], None], runs: int, warmup: int) -> float:
    for _ in range(warmup):
        once()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        once()
        times.append((time.perf_counter() - started) * 1000.0)
    return statistics.median(times)
