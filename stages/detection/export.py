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
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core.fsutil import atomic_directory, read_json, write_csv, write_json
from core.profiles import PROFILES
from core.progress import Progress
from core.spec.deployment import CompressionBudget
from runtime.bundle import MODEL_FILE, PREPROCESS_FILE, Preprocessing
from runtime.detections import Decoding
from stages.runtime import StageContext, StageFailure, run_stage
from vision.compression.onnx import convert_fp16, cpu_description
from vision.compression.timing import Timing, interleaved, steady_choice, tie_reason
from vision.data.dataset import MEAN, STD
from vision.detection.data import DetectionSplit, load_detection_split
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

ROW_FIELDS = ("variant", "candidate", "precision", "runtime", "deployable", "params", "macs", "size_bytes",
              "val_map", "val_map50", "test_map", "test_map50", "latency_ms_1_thread", "latency_ms_2_threads",
              "fp32_layers")


@dataclass(frozen=True)
class DetectorVariant:
    variant: str
    candidate: str
    precision: str
    runtime: str
    deployable: bool
    params: int
    macs: int
    size_bytes: int
    val_map: float
    val_map50: float
    test_map: float
    test_map50: float
    latency_ms_1_thread: float
    latency_ms_2_threads: float
    fp32_layers: str = ""
    """Convolutions an int8 variant keeps in fp32 (the sensitivity analysis' choice), space-separated."""
    path: Path | None = field(default=None, compare=False)

    def row(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k in ROW_FIELDS}


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
            fp32_layers: tuple[str, ...] = ()) -> DetectorVariant:
    sess = session(path)
    val = split_map(run_split(sess, on.val, on.decoding).found, on.val, on.classes)
    test = split_map(run_split(sess, on.test, on.decoding).found, on.test, on.classes)
    sample = on.sample()
    return DetectorVariant(name, name.rsplit("-", 1)[0], precision, "onnxruntime", True, candidate["params"],
                           candidate["macs"], path.stat().st_size, round(val["map"], 6), round(val["map50"], 6),
                           round(test["map"], 6), round(test["map50"], 6),
                           0.0, round(latency_ms(path, sample, on.decoding, 2, runs=40), 4), " ".join(fp32_layers),
                           path)


def torch_baseline(compress_dir: Path, trained: dict[str, Any], on: Measuring) -> DetectorVariant:
    """The trained detector in torch eager fp32, decoding included: what serving without export would run."""
    model, _ = load_detector(compress_dir, "trained")
    sample = on.sample()
    val_map = float(trained["torch_val_map"])
    return DetectorVariant("trained-torch", "trained", "fp32", "torch eager", False, trained["params"],
                           trained["macs"], (compress_dir / "trained.safetensors").stat().st_size, val_map, -1.0, -1.0,
                           -1.0, 0.0, round(torch_latency_ms(model, sample, on.decoding, 2, runs=40), 4))


def time_variants(rows: list[DetectorVariant], compress_dir: Path, on: Measuring
                  ) -> tuple[list[DetectorVariant], dict[str, Timing]]:
    """Every row's 1-thread latency with decoding and NMS, measured interleaved (vision.compression.timing)."""
    model, _ = load_detector(compress_dir, "trained")
    sample = on.sample()
    runners = {r.variant: (detector_runner(r.path, sample, on.decoding) if r.path is not None else
                           torch_detector_runner(model, sample, on.decoding)) for r in rows}
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        timings = interleaved(runners, runs=10)
    finally:
        torch.set_num_threads(before)
    return [replace(r, latency_ms_1_thread=timings[r.variant].median_cpu_ms) for r in rows], timings


def violations(row: DetectorVariant, budget: CompressionBudget, baseline: float) -> dict[str, tuple[float, float]]:
    """Limit name -> (the row's value, the limit) for each limit the row breaks."""
    values = {"max_params": row.params, "max_macs": row.macs, "max_latency_ms": row.latency_ms_1_thread,
              "max_accuracy_drop": round(baseline - row.val_map, 6)}
    return {name: (value, getattr(budget, name)) for name, value in values.items()
            if getattr(budget, name) is not None and value > getattr(budget, name)}


def choose(rows: list[DetectorVariant], budget: CompressionBudget, baseline: float,
           timings: dict[str, Timing] | None = None) -> tuple[DetectorVariant, str]:
    """The fastest deployable row within the budget, rows the timings cannot tell from it decided by fewer bytes
    then fewer MACs (vision.compression.timing), and why; StageFailure naming the closest row and what to relax
    when none is."""
    deployable = [r for r in rows if r.deployable]
    passing = sorted((r for r in deployable if not violations(r, budget, baseline)),
                     key=lambda r: (r.latency_ms_1_thread, r.size_bytes, r.variant))
    if passing:
        best, tied = steady_choice(passing, timings, lambda r: r.variant, lambda r: (r.size_bytes, r.macs, r.variant))
        return best, (f"{best.variant}: {tie_reason(tied, len(passing), len(deployable))} "
                      f"({best.latency_ms_1_thread:.3f} ms per image at batch 1 on 1 thread with decoding and NMS, "
                      f"{best.params:,} params, val mAP50-95 {best.val_map:.4f} vs {baseline:.4f} trained)")
    closest = min(deployable, key=lambda r: (len(violations(r, budget, baseline)), r.latency_ms_1_thread))
    relax = " and ".join(f"compress.budget.{name} to {value:g} (now {limit:g})"
                         for name, (value, limit) in violations(closest, budget, baseline).items())
    raise StageFailure(f"no detector variant meets compress.budget; the closest is {closest.variant}: relax {relax}, "
                       "or prune with more fine-tuning (compress.finetune_epochs) and distillation "
                       "(compress.methods: [structured_prune, distill, quantize])")


def format_table(rows: list[DetectorVariant]) -> str:
    lines = [f"{'variant':<26} {'params':>10} {'MACs':>13} {'size MB':>8} {'val mAP':>8} {'test mAP':>8} "
             f"{'mAP50':>7} {'ms 1 thr':>9} {'ms 2 thr':>9} {'fp32 layers':>11}"]
    for r in rows:
        test = "" if r.test_map < 0 else f"{r.test_map:.4f}"
        test50 = "" if r.test_map50 < 0 else f"{r.test_map50:.4f}"
        lines.append(f"{r.variant:<26} {r.params:>10,} {r.macs:>13,} {r.size_bytes / 1e6:>8.2f} {r.val_map:>8.4f} "
                     f"{test:>8} {test50:>7} {r.latency_ms_1_thread:>9.3f} {r.latency_ms_2_threads:>9.3f} "
                     f"{len(r.fp32_layers.split()) if r.precision == 'int8' else '':>11}")
    return "\n".join(lines)


# Eight parameters: where the candidates are, what they are measured on, and how they are lowered.
def build_variants(compress_dir: Path, candidates: dict[str, dict[str, Any]], on: Measuring, work: Path,
                   precision: str, weight_bits: int, calibration: np.ndarray, floor: float) -> list[DetectorVariant]:
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
        print(format_table(rows), flush=True)
        chosen, reason = choose(rows, budget, baseline, timings)
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
    table = [r.row() for r in rows]
    write_csv(ctx.output("variants"), table, ROW_FIELDS)
    write_json(ctx.output("choice"), {"chosen": chosen.variant, "reason": reason,
                                      "budget": budget.model_dump(mode="json"),
                                      "baseline_val_map": baseline, "measured_on": cpu_description(),
                                      "variants": table,
                                      "latency_evidence": {name: t.evidence() for name, t in timings.items()}})
    torch_row = rows[0]
    write_json(ctx.output("summary"), {
        "variant": chosen.variant, "val_map": chosen.val_map, "test_map": chosen.test_map,
        "test_map50": chosen.test_map50, "val_map_drop": round(baseline - chosen.val_map, 6), "params": chosen.params,
        "macs": chosen.macs, "size_bytes": chosen.size_bytes, "latency_ms_1_thread": chosen.latency_ms_1_thread,
        "macs_reduction": round(torch_row.macs / chosen.macs, 3),
        "speedup_vs_torch_fp32": round(torch_row.latency_ms_1_thread / chosen.latency_ms_1_thread, 3)})
    for name, record in described.get("tracks", {}).items():
        print(f"export: {name} pruning ended by {record['stopped_by']} after {record['kept_steps']} kept round(s)")
    print(f"export: {reason}")


if __name__ == "__main__":
    from core.contracts.detection.export import CONTRACT

    run_stage(CONTRACT, main)
