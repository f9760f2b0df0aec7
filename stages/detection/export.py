"""export (detection): lower the detector candidates for target.hardware, measure every variant with ONNX
Runtime, and keep the fastest within compress.budget as the deployable model.

Variants: each candidate as fp32 ONNX, plus static QDQ int8 (per-channel weights at the target's bits,
activation ranges calibrated on `compress.calibration_images` letterboxed training images) for CPU targets or
fp16 for GPU targets; an int8 file below the accuracy floor keeps its most sensitive convolutions in fp32
(vision.detection.quantize). Each is measured for validation and test mAP, params, MACs, file size and batch-1
latency with decoding and NMS included (what a served image costs); torch eager fp32 of the trained detector is
the baseline row. Within the budget means: params, MACs and latency within their limits and validation mAP50-95
at most compress.budget.max_accuracy_drop below the trained detector's.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.fsutil import atomic_directory, read_json, write_csv, write_json
from core.profiles import PROFILES
from core.progress import Progress
from core.spec.deployment import CompressionBudget
from runtime.bundle import MODEL_FILE, PREPROCESS_FILE, Preprocessing
from runtime.detections import Decoding
from stages.runtime import StageContext, StageFailure, run_stage
from vision.compression.onnx import convert_fp16, cpu_description
from vision.compression.pruning import track_line
from vision.compression.timing import Timing
from vision.compression.variants import NoVariantWithinBudget, Variant, choose, format_table, time_rows
from vision.data.dataset import MEAN, STD
from vision.detection.data import DetectionSplit, load_detection_split
from vision.detection.metrics import SCORING
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


@dataclass(frozen=True)
class Measuring:
    """What every variant is measured on: the splits, the decoding, one image for latency."""

    val: DetectionSplit
    test: DetectionSplit
    decoding: Decoding
    classes: list[str]

    def val_map(self, path: Path) -> float:
        return split_map(run_split(session(path), self.val, self.decoding).found, self.val, self.classes)["map"]

    def sample(self) -> np.ndarray:
        images, _ = next(letterboxed(self.test.take([0]), self.decoding.input_wh))
        return images[0]


def measure(path: Path, name: str, candidate: dict[str, Any], precision: str, on: Measuring,
            fp32_layers: tuple[str, ...] = ()) -> Variant:
    sess = session(path)
    val = split_map(run_split(sess, on.val, on.decoding).found, on.val, on.classes)
    test = split_map(run_split(sess, on.test, on.decoding).found, on.test, on.classes)
    sample = on.sample()
    figures = {"val_map": round(val["map"], 6), "val_map50": round(val["map50"], 6), "test_map": round(test["map"], 6),
               "test_map50": round(test["map50"], 6)}
    return Variant(name, name.rsplit("-", 1)[0], precision, "onnxruntime", True, candidate["params"], candidate["macs"],
                   path.stat().st_size, figures, 0.0, round(latency_ms(path, sample, on.decoding, 2, runs=40), 4),
                   " ".join(fp32_layers), path)


def torch_baseline(compress_dir: Path, trained: dict[str, Any], on: Measuring) -> Variant:
    """The trained detector in torch eager fp32, decoding included: what serving without export would run."""
    model, _ = load_detector(compress_dir, "trained")
    sample = on.sample()
    val_map = float(trained["torch_val_map"])
    figures = {"val_map": val_map, "val_map50": None, "test_map": None, "test_map50": None}
    return Variant("trained-torch", "trained", "fp32", "torch eager", False, trained["params"], trained["macs"],
                   (compress_dir / "trained.safetensors").stat().st_size, figures, 0.0,
                   round(torch_latency_ms(model, sample, on.decoding, 2, runs=40), 4))


def time_variants(rows: list[Variant], compress_dir: Path, on: Measuring) -> tuple[list[Variant], dict[str, Timing]]:
    """Every row's 1-thread latency with decoding and NMS, measured interleaved
    (vision.compression.variants.time_rows)."""
    model, _ = load_detector(compress_dir, "trained")
    sample = on.sample()
    return time_rows(rows, lambda r: detector_runner(r.path, sample, on.decoding) if r.path is not None else
                     torch_detector_runner(model, sample, on.decoding), runs=10)


# Eight parameters: where the candidates are, what they are measured on, and how they are lowered.
def build_variants(compress_dir: Path, candidates: dict[str, dict[str, Any]], on: Measuring, work: Path,
                   precision: str, weight_bits: int, calibration: np.ndarray, floor: float) -> list[Variant]:
    """The torch baseline row, then each candidate as fp32 ONNX and at `precision` (fp32: not lowered); an int8
    file below `floor` (validation mAP50-95) keeps its most sensitive convolutions in fp32."""
    lowered = precision != "fp32"
    with Progress("export", 1 + len(candidates) * (2 if lowered else 1), unit="variant") as shown:
        rows = [torch_baseline(compress_dir, candidates["trained"], on)]
        shown.update(1, "trained-torch measured")
        for name, candidate in candidates.items():
            fp32 = work / f"{name}-fp32.onnx"
            shutil.copyfile(compress_dir / f"{name}.onnx", fp32)
            rows.append(measure(fp32, f"{name}-fp32", candidate, "fp32", on))
            shown.update(1, f"{name}-fp32 measured")
            if lowered:
                low, kept = work / f"{name}-{precision}.onnx", ()
                if precision == "int8":
                    probe = calibration_images(on.val, on.decoding.input_wh, SENSITIVITY_IMAGES)
                    kept = quantize_within_floor(fp32, low, calibration, probe, weight_bits, on.val_map,
                                                 floor).fp32_layers
                else:
                    convert_fp16(fp32, low)
                rows.append(measure(low, f"{name}-{precision}", candidate, precision, on, kept))
                shown.update(1, f"{name}-{precision} measured")
    return rows


def main(ctx: StageContext) -> None:
    budget: CompressionBudget = ctx.spec("compress.budget")
    profile = PROFILES[ctx.spec("target").hardware]
    compress_dir = ctx.input("candidates")
    described = read_json(ctx.input("variants"))
    _, decoding = load_detector(compress_dir, "trained")
    classes = list(described["model"]["classes"])
    images, boxes, split = ctx.input("images"), ctx.input("boxes"), ctx.input("split")
    train, val, test = (load_detection_split(images, boxes, split, name, classes) for name in ("train", "val", "test"))
    on = Measuring(val, test, decoding, classes)
    baseline = float(described["variants"]["trained"]["torch_val_map"])
    precision = profile.precision if "quantize" in ctx.spec("compress.methods") else "fp32"
    calibration = calibration_images(train, decoding.input_wh, ctx.spec("compress.calibration_images"))
    with atomic_directory(ctx.output("deployable")) as out:
        work = out / "variants"
        work.mkdir()
        rows = build_variants(compress_dir, described["variants"], on, work, precision, profile.int8_weight_bits,
                              calibration, baseline - budget.max_accuracy_drop)
        rows, timings = time_variants(rows, compress_dir, on)
        print(format_table(rows, SCORING), flush=True)
        try:
            chosen, reason = choose(rows, budget, baseline, SCORING, described.get("tracks", {}), timings)
        except NoVariantWithinBudget as exc:
            raise StageFailure(str(exc)) from None
        assert chosen.path is not None
        shutil.copyfile(chosen.path, out / MODEL_FILE)
        shutil.rmtree(work)
        write_json(out / PREPROCESS_FILE, Preprocessing(
            input_size_px=decoding.input_wh[0], mean=list(MEAN), std=list(STD), classes=classes,
            output_name="class_logits", variant=chosen.variant, precision=chosen.precision, target=profile.name,
            execution_provider=profile.execution_provider, task="detection",
            detection={"input_wh": list(decoding.input_wh), "strides": list(decoding.strides),
                       "score_threshold": decoding.score_threshold, "nms_iou": decoding.nms_iou,
                       "max_detections": decoding.max_detections,
                       "confidence_threshold": ctx.spec("detection.confidence_threshold")}).to_dict())
    table = [r.row(SCORING) for r in rows]
    write_csv(ctx.output("variants"), table, SCORING.row_fields())
    write_json(ctx.output("choice"), {"chosen": chosen.variant, "reason": reason,
                                      "budget": budget.model_dump(mode="json"),
                                      "baseline_val_map": baseline, "measured_on": cpu_description(),
                                      "variants": table,
                                      "latency_evidence": {name: t.evidence() for name, t in timings.items()}})
    torch_row = rows[0]
    write_json(ctx.output("summary"), {
        "variant": chosen.variant, "val_map": chosen.score(SCORING), "test_map": chosen.figures["test_map"],
        "test_map50": chosen.figures["test_map50"], "val_map_drop": round(baseline - chosen.score(SCORING), 6),
        "params": chosen.params,
        "macs": chosen.macs, "size_bytes": chosen.size_bytes, "latency_ms_1_thread": chosen.latency_ms_1_thread,
        "macs_reduction": round(torch_row.macs / chosen.macs, 3),
        "speedup_vs_torch_fp32": round(torch_row.latency_ms_1_thread / chosen.latency_ms_1_thread, 3)})
    for name, record in described.get("tracks", {}).items():
        print(f"export: {track_line(name, record, SCORING)}")
    print(f"export: {reason}")


if __name__ == "__main__":
    from core.contracts.detection.export import CONTRACT

    run_stage(CONTRACT, main)
