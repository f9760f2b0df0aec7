"""export (detection): lower the detector candidates for target.hardware, measure every variant with ONNX
Runtime, and keep the fastest within compress.budget as the deployable model (stages.exporting.export).

A detector's variants are scored by validation and test mAP, and timed with decoding and NMS included (what a
served image costs); int8 is static QDQ calibrated on `compress.calibration_images` letterboxed training images,
and a file below the floor keeps its most sensitive convolutions in fp32 (vision.detection.quantize). The
bundle carries the decoding the server needs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.fsutil import read_json
from core.profiles import PROFILES
from runtime.detections import Decoding
from stages.exporting import ExportTask, baseline_score, export
from stages.runtime import StageContext, run_stage
from vision.compression.variants import Variant
from vision.data.dataset import MEAN, STD
from vision.detection.data import DetectionSplit, load_detection_split
from vision.detection.metrics import SCORING
from vision.detection.model import Detector
from vision.detection.onnx import (
    calibration_images,
    detector_runner,
    latency_ms,
    letterboxed,
    run_split,
    session,
    split_map,
    torch_detector_runner,
    torch_latency_ms,
)
from vision.detection.quantize import SENSITIVITY_IMAGES, quantize_within_floor
from vision.detection.store import load_detector


# Ten fields: the trained detector and its description, the splits and the int8 floor's inputs.
@dataclass(frozen=True)
class DetectorExport:
    """A detector's variants: mAP on the validation and test splits, latency with decoding and NMS."""

    model: Detector
    weights: Path
    trained: dict[str, Any]
    """The compress stage's description of the trained detector (params, MACs, torch validation mAP)."""
    decoding: Decoding
    classes: list[str]
    val: DetectionSplit
    test: DetectionSplit
    calibration: np.ndarray
    weight_bits: int
    floor: float
    confidence_threshold: float
    scoring = SCORING
    timing_runs = 10

    @property
    def megapixels_per_pass(self) -> float:
        """The input's area untiled (each image is seen at most at the input's resolution); tiled, the new area
        one tile adds (a step of tile x (1 - overlap) each way, at the tile's own resolution, shrunk into the
        input when the tile is larger)."""
        tiling, (width, height) = self.decoding.tiling, self.decoding.input_wh
        if tiling is None:
            return width * height / 1e6
        scale = min(1.0, width / tiling.tile_wh[0], height / tiling.tile_wh[1])
        step = [(side - int(tiling.overlap * side)) * scale for side in tiling.tile_wh]
        return step[0] * step[1] / 1e6

    def sample(self) -> np.ndarray:
        images, _ = next(letterboxed(self.test.take([0]), self.decoding.input_wh))
        return images[0]

    def val_map(self, path: Path) -> float:
        return split_map(run_split(session(path), self.val, self.decoding).found, self.val, self.classes,
                         self.decoding.max_detections)["map"]

    def baseline(self) -> Variant:
        figures = {"val_map": float(self.trained["torch_val_map"]), "val_map50": None, "test_map": None,
                   "test_map50": None}
        return Variant("trained-torch", "trained", "fp32", "torch eager", False, self.trained["params"],
                       self.trained["macs"], self.weights.stat().st_size, figures, 0.0,
                       round(torch_latency_ms(self.model, self.sample(), self.decoding, 2, runs=40), 4))

    def figures(self, path: Path) -> dict[str, float]:
        sess = session(path)
        val = split_map(run_split(sess, self.val, self.decoding).found, self.val, self.classes,
                         self.decoding.max_detections)
        test = split_map(run_split(sess, self.test, self.decoding).found, self.test, self.classes,
                         self.decoding.max_detections)
        return {"val_map": round(val["map"], 6), "val_map50": round(val["map50"], 6),
                "test_map": round(test["map"], 6), "test_map50": round(test["map50"], 6)}

    def latency_2_threads(self, path: Path) -> float:
        return latency_ms(path, self.sample(), self.decoding, 2, runs=40)

    def quantize(self, fp32: Path, int8: Path) -> tuple[str, ...]:
        probe = calibration_images(self.val, self.decoding.input_wh, SENSITIVITY_IMAGES)
        return quantize_within_floor(fp32, int8, self.calibration, probe, self.weight_bits, self.val_map,
                                     self.floor).fp32_layers

    def runner(self, row: Variant) -> Callable[[], None]:
        if row.path is None:
            return torch_detector_runner(self.model, self.sample(), self.decoding)
        return detector_runner(row.path, self.sample(), self.decoding)

    def preprocessing(self, model_file: Path) -> dict[str, Any]:
        d = self.decoding
        return {"input_size_px": d.input_wh[0], "mean": list(MEAN), "std": list(STD), "classes": self.classes,
                "output_name": "class_logits", "task": "detection",
                "detection": {"input_wh": list(d.input_wh), "strides": list(d.strides), **d.to_dict(),
                              "confidence_threshold": self.confidence_threshold}}


def detector_export(ctx: StageContext) -> ExportTask:
    """The splits, the trained detector and the int8 floor the stage's inputs describe."""
    compress_dir = ctx.input("candidates")
    described = read_json(ctx.input("variants"))
    model, decoding = load_detector(compress_dir, "trained")
    classes = list(described["model"]["classes"])
    images, boxes, split = ctx.input("images"), ctx.input("boxes"), ctx.input("split")
    train, val, test = (load_detection_split(images, boxes, split, name, classes) for name in ("train", "val", "test"))
    floor = baseline_score(described, SCORING) - ctx.spec("compress.budget").max_accuracy_drop
    return DetectorExport(model, compress_dir / "trained.safetensors", described["variants"]["trained"], decoding,
                          classes, val, test,
                          calibration_images(train, decoding.input_wh, ctx.spec("compress.calibration_images")),
                          PROFILES[ctx.spec("target").hardware].int8_weight_bits, floor,
                          ctx.spec("detection.confidence_threshold"))


def main(ctx: StageContext) -> None:
    export(ctx, detector_export(ctx))


if __name__ == "__main__":
    from core.contracts.detection.export import CONTRACT

    run_stage(CONTRACT, main)
