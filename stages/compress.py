"""compress: shrink the trained model toward the spec's budget and export every candidate to ONNX.

Candidates: the trained model itself; `pruned` (torch-pruning rounds, each
fine-tuned on labels); `pruned_distilled` (the same rounds fine-tuned with the
trained model as teacher); `sparse` (group-sparsity training, the groups it
zeroed removed, then fine-tuned); `qat` (quantization-aware fine-tuning, only
when int8 of the trained model misses the accuracy budget even with its most
sensitive layers in fp32); `student` (a smaller timm backbone distilled from
scratch, when the spec names one). Each is exported to fp32 ONNX and checked
against its torch self on the test split, and saved in torch form too
(`<name>.safetensors` + `<name>.json`) for gradient-based explanations. Quantization, latency and the choice
of the deployable model are the export stage's job, so everything here is a
pure function of the inputs (no timings).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import lightning as L
import timm
import torch

from core.profiles import PROFILES
from core.spec.deployment import CompressSection
from core.spec.training import AugmentSection, TrainSection
from stages import compressing
from stages.compressing import round_logger
from stages.runtime import StageContext, StageFailure, run_stage
from vision.compression.candidates import save_candidate
from vision.compression.onnx import export_onnx, latency_ms, parity
from vision.compression.pruning import (
    BudgetCheck,
    PruneResult,
    PruneRound,
    Size,
    finetune_epochs,
    measure_size,
    prune_to_budget,
)
from vision.compression.qat import quantization_aware_finetune
from vision.compression.quantize import Int8Plan, quantize_within_floor
from vision.compression.scoring import Scoring
from vision.compression.sparsity import prune_zeroed, sparse_train
from vision.data.dataset import SplitData, Splits, load_splits
from vision.tasks.base import Task
from vision.tasks.classification import TASK as CLASSIFICATION
from vision.training.fit import Teacher, fit
from vision.training.model import ModelConfig, load_model, task_score


def budget_check(compression: CompressSection, size_px: int, work: Path) -> BudgetCheck:
    """What 'within budget' means while pruning: params and MACs; fp32 latency only when nothing quantizes
    afterwards (int8 is faster, so the export stage judges latency on the final file)."""
    budget = compression.budget
    measure_latency = budget.max_latency_ms is not None and "quantize" not in compression.methods

    def within(model: torch.nn.Module, size: Size) -> bool:
        if budget.max_params is not None and size.params > budget.max_params:
            return False
        if budget.max_macs is not None and size.macs > budget.max_macs:
            return False
        if measure_latency:
            export_onnx(model, size_px, work / "probe.onnx")
            return latency_ms(work / "probe.onnx", size_px, threads=1, runs=50) <= budget.max_latency_ms
        return True

    return within


# Ten parameters: compress's own, passed on to one track.
def _sparse_track(trained: torch.nn.Module, splits: Splits, compression: CompressSection, finetune: TrainSection,
                  seed: int, within: BudgetCheck, floor: float, teacher: Teacher | None,
                  augment: AugmentSection | None, task: Task) -> PruneResult:
    """Sparse training, the zeroed groups removed, a fine-tune (distilled when `teacher`): one round of its own."""
    settings, size_px = compression.sparse_training, int(splits.train.images.shape[1])
    sparse = sparse_train(trained, splits.train, splits.val, finetune, settings, seed, augment, task)
    pruned = prune_zeroed(sparse, size_px, settings.zero_below)
    print(f"compress: sparse training zeroed {sum(pruned.removed.values()):,} channels in "
          f"{len(pruned.removed)} groups", flush=True)
    fit(pruned.model, splits.train, splits.val, finetune, seed + 1, augment, teacher=teacher, progress=False,
        task=task, label="compress: sparse fine-tuning")
    size, score = measure_size(pruned.model, size_px), task_score(pruned.model, splits.val, task)
    result = PruneRound(1, size.params, size.macs, round(score, 6), within(pruned.model, size), score >= floor)
    round_logger("sparse", task.scoring)(result)
    if not result.above_floor:
        return PruneResult(trained, [result], budget_met=False, history=[], floor=floor)
    return PruneResult(pruned.model, [result], budget_met=result.within_budget, history=pruned.history, floor=floor)


def _int8_misses(trained: torch.nn.Module, splits: Splits, compression: CompressSection, plan: Int8Plan,
                 work: Path, task: Task) -> bool:
    """Whether int8 of the trained model, its most sensitive layers in fp32 as the export stage would keep
    them, stays below the accuracy floor (then quantization-aware fine-tuning is worth its time)."""
    size_px = int(splits.train.images.shape[1])
    export_onnx(trained, size_px, work / "probe.onnx")
    calibration = splits.train.sample(compression.calibration_images)
    result = quantize_within_floor(work / "probe.onnx", work / "probe-int8.onnx", calibration.images, splits.val,
                                   plan, task)
    (work / "probe-int8.onnx").unlink(missing_ok=True)
    print(f"compress: int8 of the trained model: {task.scoring.label} {result.score:.4f} with "
          f"{len(result.fp32_layers)} layer(s) in fp32 (floor {plan.floor:.4f})", flush=True)
    return result.score < plan.floor


# Ten parameters: the model, its data, and the spec's three sections that shape compression, plus the seed,
# the working folder, the target's int8 weight bits and the task; each comes from a different place in the stage.
def compress(trained: torch.nn.Module, config: ModelConfig, splits: Splits, compression: CompressSection,
             training: TrainSection, augment: AugmentSection | None, seed: int, work: Path,
             int8_weight_bits: int | None = None, task: Task = CLASSIFICATION
             ) -> tuple[dict[str, torch.nn.Module], dict[str, PruneResult]]:
    """The candidate torch models by name, and the pruning history of each pruned track. A track whose every
    round fell below the accuracy floor is the trained model: it is not a candidate of its own.
    `int8_weight_bits` None: the target does not run int8, so no quantization-aware candidate."""
    train, val = splits.train, splits.val
    finetune = training.model_copy(update={"epochs": finetune_epochs(compression, training, len(train.labels)),
                                            "hpo": None, "early_stopping_patience": 0})
    floor = task_score(trained, val, task) - compression.budget.max_accuracy_drop
    within = budget_check(compression, config.input_size_px, work)
    budget = compression.budget
    smallest = budget.max_params is None and budget.max_macs is None and budget.max_latency_ms is None
    teacher = Teacher(trained.eval(), compression.distillation.temperature, compression.distillation.alpha)
    distilling = "distill" in compression.methods
    models: dict[str, torch.nn.Module] = {"trained": trained}
    tracks: dict[str, PruneResult] = {}
    if "structured_prune" in compression.methods:
        plans = [("pruned", None)] + ([("pruned_distilled", teacher)] if distilling else [])
        for name, guide in plans:
            tracks[name] = prune_to_budget(trained, train, val, compression, finetune, seed, within, floor,
                                           teacher=guide, augment=augment,
                                           progress=round_logger(name, task.scoring), smallest=smallest, task=task)
    if "sparse_train" in compression.methods:
        tracks["sparse"] = _sparse_track(trained, splits, compression, finetune, seed, within, floor,
                                         teacher if distilling else None, augment, task)
    models.update({name: track.model for name, track in tracks.items() if track.kept_steps})
    quantization = compression.quantization
    if int8_weight_bits is not None and "quantize" in compression.methods and quantization.qat_epochs:
        plan = Int8Plan.from_spec(quantization, int8_weight_bits, floor)
        if _int8_misses(trained, splits, compression, plan, work, task):
            models["qat"] = quantization_aware_finetune(
                trained, train, val, training.model_copy(update={"epochs": quantization.qat_epochs}), seed,
                plan.weight_bits, augment, teacher if distilling else None, task)
    if compression.student:
        L.seed_everything(seed, verbose=False)
        student = timm.create_model(compression.student, pretrained=False, num_classes=len(config.classes))
        student_training = training.model_copy(update={"hpo": None})
        guide = teacher if distilling else None
        models["student"] = fit(student, train, val, student_training, seed, augment, teacher=guide, task=task,
                                label="compress: student").model
    return models, tracks


# Eight parameters: the candidates and how they were made, the splits they are checked on, where they go, and
# the task that scores them.
def describe(models: dict[str, torch.nn.Module], config: ModelConfig, tracks: dict[str, PruneResult],
             student: str | None, val: SplitData, test: SplitData, out: Path,
             task: Task = CLASSIFICATION) -> dict[str, dict[str, Any]]:
    """Export each candidate to `<name>.onnx` in `out`, save its torch form beside it, and record its size,
    validation score (the task's, as `torch_<Scoring.field>`) and ONNX parity."""
    size_px = config.input_size_px
    described: dict[str, dict[str, Any]] = {}
    for name, model in models.items():
        path = out / f"{name}.onnx"
        export_onnx(model, size_px, path)
        own = replace(config, backbone=student, pretrained=None) if name == "student" and student else config
        save_candidate(model, own, tracks[name].history if name in tracks else [], out, name,
                       batchnorm_folded=name == "qat")
        check = parity(model, path, test.images)
        if check.top1_agreement < 1.0 or check.max_abs_logit_diff > 1e-3:
            raise StageFailure(f"ONNX export of {name} disagrees with torch: top-1 agreement "
                               f"{check.top1_agreement:.4f}, max logit difference {check.max_abs_logit_diff:.2e}")
        size = measure_size(model, size_px)
        described[name] = {"params": size.params, "macs": size.macs,
                           f"torch_{task.scoring.field}": round(task_score(model, val, task), 6),
                           "onnx_parity": asdict(check)}
    return described


@dataclass(frozen=True)
class ClassifierCompress:
    """An image-level task's candidates (stages.compressing.CompressTask): a classifier's, a tagger's."""

    trained: torch.nn.Module
    config: ModelConfig
    splits: Splits
    ctx: StageContext
    task: Task = CLASSIFICATION

    @property
    def scoring(self) -> Scoring:
        return self.task.scoring

    def candidates(self, work: Path) -> tuple[dict[str, Any], dict[str, PruneResult]]:
        ctx = self.ctx
        profile = PROFILES[ctx.spec("target").hardware]
        found = compress(self.trained, self.config, self.splits, ctx.spec("compress"), ctx.spec("train"),
                         ctx.spec("augment"), ctx.spec("seed"), work,
                         profile.int8_weight_bits if profile.precision == "int8" else None, self.task)
        (work / "probe.onnx").unlink(missing_ok=True)
        return found

    def describe(self, models: dict[str, Any], tracks: dict[str, PruneResult], out: Path) -> dict[str, dict[str, Any]]:
        return describe(models, self.config, tracks, self.ctx.spec("compress").student, self.splits.val,
                        self.splits.test, out, self.task)

    def header(self) -> dict[str, Any]:
        return {"model": asdict(self.config)}


def main(ctx: StageContext) -> None:
    trained, config = load_model(ctx.input("model"))
    splits = load_splits(ctx.input("images"), ctx.input("split"), config.classes, config.input_size_px)
    compressing.compress(ctx, ClassifierCompress(trained, config, splits, ctx))


if __name__ == "__main__":
    from core.contracts.classification.compress import CONTRACT

    run_stage(CONTRACT, main)
