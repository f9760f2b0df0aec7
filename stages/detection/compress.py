"""compress (detection): prune the trained detector toward compress.budget, with and without distillation, and
export every candidate to ONNX checked against torch on the test split.

Candidates: `trained`; `pruned` (torch-pruning rounds over backbone, neck and head, each fine-tuned on the
boxes); `pruned_distilled` (the same rounds fine-tuned while imitating the trained detector: class-logit KL and
confidence-weighted box regression, vision.detection.distill) when `distill` is among compress.methods;
`student` (with compress.student_head: a detector with a smaller feature pyramid and head, on the trained
detector's fine-tuned backbone or on compress.student's from its offline ImageNet weights, trained for
train.epochs while imitating the trained detector: vision.detection.student). The
accuracy floor is the trained detector's validation mAP50-95 minus compress.budget.max_accuracy_drop. Each
candidate is saved in torch form (`<name>.safetensors` + `<name>.json`, with its pruning record) for
explanations, and as fp32 `<name>.onnx`; an export whose decoded detections differ from torch's fails the
stage. Quantization, latency and the choice are the export stage's.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from core.spec.deployment import CompressSection
from core.spec.training import TrainSection
from runtime.detections import Decoding
from stages import compressing
from stages.compressing import round_logger
from stages.runtime import StageContext, StageFailure, run_stage
from vision.compression.pruning import PruneResult, Size, finetune_epochs
from vision.detection.compression import DetectorBudget, PruningPlan, measure_detector, prune_detector, validation_map
from vision.detection.data import DetectionSplit, load_detection_split
from vision.detection.distill import DetectionTeacher
from vision.detection.fit import fit_detector
from vision.detection.metrics import SCORING
from vision.detection.model import Detector
from vision.detection.onnx import export_detector, parity, run_split, session
from vision.detection.predict import predict_split
from vision.detection.settings import spec_sampling
from vision.detection.store import load_detector, save_detector
from vision.detection.student import StudentPlan, initial_student, student_plan


def within(compression: CompressSection) -> DetectorBudget:
    """Params and MACs while pruning; latency is judged by the export stage on the final (quantized) file."""
    budget = compression.budget

    def check(model: Detector, size: Size) -> bool:
        return ((budget.max_params is None or size.params <= budget.max_params)
                and (budget.max_macs is None or size.macs <= budget.max_macs))

    return check


def compress_detector(trained: Detector, train: DetectionSplit, val: DetectionSplit, plan: PruningPlan,
                      student: StudentPlan | None = None
                      ) -> tuple[dict[str, Detector], dict[str, PruneResult], float]:
    """The candidate detectors by name, each pruning track, and the accuracy floor (validation mAP50-95)."""
    compression = plan.compression
    floor = validation_map(trained, val, plan.decoding) - compression.budget.max_accuracy_drop
    models: dict[str, Detector] = {"trained": trained}
    tracks: dict[str, PruneResult] = {}
    teacher = DetectionTeacher(trained.eval(), compression.distillation.temperature, compression.distillation.alpha)
    if student is not None:
        torch.manual_seed(plan.seed)
        models["student"] = fit_detector(initial_student(student, trained), train, val,
                                         student.training, plan.decoding, plan.seed, plan.augment,
                                         min_visibility=plan.min_visibility, teacher=teacher, tiles=plan.tiles,
                                         label="compress: student").model
    if "structured_prune" in compression.methods:
        guides = [("pruned", None)] + ([("pruned_distilled", teacher)] if "distill" in compression.methods else [])
        for name, guide in guides:
            tracks[name] = prune_detector(trained, train, val, plan, within(compression), floor, guide,
                                           round_logger(name, SCORING))
    models.update({name: track.model for name, track in tracks.items() if track.kept_steps})
    return models, tracks, floor


def describe(models: dict[str, Detector], tracks: dict[str, PruneResult], decoding: Decoding,
             val: DetectionSplit, test: DetectionSplit, confidence: float, out: Path) -> dict[str, dict[str, Any]]:
    """Save each candidate (torch and ONNX) in `out`; its size, validation mAP and ONNX parity on `test`."""
    described: dict[str, dict[str, Any]] = {}
    classes = list(next(iter(models.values())).config.classes)
    for name, model in models.items():
        save_detector(model, decoding, out, tracks[name].history if name in tracks else None, name=name)
        path = out / f"{name}.onnx"
        export_detector(model, path)
        check = parity(predict_split(model, test, decoding), run_split(session(path), test, decoding).found, test,
                       classes, confidence)
        if not check.holds:
            raise StageFailure(f"the ONNX export of {name} disagrees with torch on the test split: {check.line()}")
        size = measure_detector(model)
        described[name] = {"params": size.params, "macs": size.macs,
                           "torch_val_map": round(validation_map(model, val, decoding), 6),
                           "onnx_parity": asdict(check)}
        print(f"compress: {name} exported; parity: {check.line()}", flush=True)
    return described


@dataclass
class DetectorCompress:
    """A detector's candidates (stages.compressing.CompressTask)."""

    trained: Detector
    decoding: Decoding
    train: DetectionSplit
    val: DetectionSplit
    test: DetectionSplit
    plan: PruningPlan
    confidence_threshold: float
    student: StudentPlan | None = None
    floor: float | None = None
    """The accuracy floor (validation mAP50-95), known once the candidates are made."""
    scoring = SCORING

    def candidates(self, work: Path) -> tuple[dict[str, Any], dict[str, PruneResult]]:
        models, tracks, self.floor = compress_detector(self.trained, self.train, self.val, self.plan, self.student)
        return models, tracks

    def describe(self, models: dict[str, Any], tracks: dict[str, PruneResult], out: Path) -> dict[str, dict[str, Any]]:
        return describe(models, tracks, self.decoding, self.val, self.test, self.confidence_threshold, out)

    def header(self) -> dict[str, Any]:
        assert self.floor is not None, "the candidates are made first"
        return {"model": self.trained.config.to_json(), "task": "detection", "floor": round(self.floor, 6)}


def main(ctx: StageContext) -> None:
    compression: CompressSection = ctx.spec("compress")
    training: TrainSection = ctx.spec("train")
    classes: list[str] = list(ctx.spec("classes"))
    trained, decoding = load_detector(ctx.input("model"))
    images, boxes, split = ctx.input("images"), ctx.input("boxes"), ctx.input("split")
    train, val, test = (load_detection_split(images, boxes, split, name, classes) for name in ("train", "val", "test"))
    finetune = training.model_copy(update={"epochs": finetune_epochs(compression, training, len(train)),
                                           "hpo": None, "early_stopping_patience": 0})
    plan = PruningPlan(compression, finetune, decoding, ctx.spec("seed"), ctx.spec("augment"),
                       ctx.spec("detection.min_visibility"), spec_sampling(ctx.spec("detection.tiling")))
    compressing.compress(ctx, DetectorCompress(trained, decoding, train, val, test, plan,
                                               ctx.spec("detection.confidence_threshold"),
                                               student_plan(compression, trained, training)))


if __name__ == "__main__":
    from core.contracts.detection.compress import CONTRACT

    run_stage(CONTRACT, main)
