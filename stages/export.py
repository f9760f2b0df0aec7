"""export (classification): quantize the candidates for the target, measure every variant with ONNX Runtime, pick
the deployable (stages.exporting.export).

A classifier's variants are scored by validation and test accuracy; its int8 file keeps the layers the accuracy
floor needs in fp32 (vision.compression.quantize, `compress.quantization`); latency is the network's alone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from core.fsutil import read_json
from core.profiles import PROFILES
from stages.exporting import ExportTask, baseline_score, export
from stages.runtime import StageContext, run_stage
from vision.compression.onnx import (
    latency_ms,
    onnx_runner,
    onnx_score,
    session,
    torch_latency_ms,
    torch_runner,
)
from vision.compression.quantize import Int8Plan, quantize_within_floor
from vision.compression.scoring import Scoring
from vision.compression.timing import RUNS_PER_ROUND
from vision.compression.variants import Variant
from vision.data.dataset import SplitData, Splits, load_splits
from vision.tasks.base import Task
from vision.tasks.classification import TASK as CLASSIFICATION
from vision.training.model import WEIGHTS_FILE, load_model


@dataclass(frozen=True)
class ClassifierExport:
    """An image-level task's variants (a classifier's, a tagger's): the task's score on the validation and test
    splits, latency of the network alone."""

    model: torch.nn.Module
    model_dir: Path
    trained: dict[str, Any]
    """The compress stage's description of the trained model (params, MACs, torch validation accuracy)."""
    config: dict[str, Any]
    val: SplitData
    test: SplitData
    calibration: SplitData
    int8: Int8Plan
    task: Task = CLASSIFICATION
    timing_runs = RUNS_PER_ROUND
    megapixels_per_pass = None

    @property
    def scoring(self) -> Scoring:
        return self.task.scoring

    @property
    def size_px(self) -> int:
        return int(self.config["input_size_px"])

    def baseline(self) -> Variant:
        return Variant("trained-torch", "trained", "fp32", "torch eager", False, self.trained["params"],
                       self.trained["macs"], (self.model_dir / WEIGHTS_FILE).stat().st_size,
                       {self.scoring.field: self.trained[f"torch_{self.scoring.field}"], self._test: None},
                       0.0, round(torch_latency_ms(self.model, self.size_px, 2, runs=50), 4))

    @property
    def _test(self) -> str:
        return self.scoring.test_columns[0]

    def figures(self, path: Path) -> dict[str, float]:
        sess = session(path)
        return {self.scoring.field: round(onnx_score(sess, self.val, self.task), 6),
                self._test: round(onnx_score(sess, self.test, self.task), 6)}

    def latency_2_threads(self, path: Path) -> float:
        return latency_ms(path, self.size_px, 2, runs=50)

    def quantize(self, fp32: Path, int8: Path) -> tuple[str, ...]:
        return quantize_within_floor(fp32, int8, self.calibration.images, self.val, self.int8, self.task).fp32_layers

    def runner(self, row: Variant) -> Callable[[], None]:
        return onnx_runner(row.path, self.size_px) if row.path is not None else torch_runner(self.model, self.size_px)

    def preprocessing(self, model_file: Path) -> dict[str, Any]:
        return {"input_size_px": self.size_px, "mean": self.config["mean"], "std": self.config["std"],
                "classes": self.config["classes"]}


def classifier_export(ctx: StageContext, splits: Splits | None = None, task: Task = CLASSIFICATION,
                      kind: type[ClassifierExport] = ClassifierExport) -> ExportTask:
    """The splits (a classifier's, unless given), the trained model and the int8 plan the stage's inputs
    describe, as `kind` measures them for `task`."""
    described = read_json(ctx.input("variants"))
    config = described["model"]
    if splits is None:
        splits = load_splits(ctx.input("images"), ctx.input("split"), config["classes"],
                             int(config["input_size_px"]))
    calibration = splits.train.sample(ctx.spec("compress.calibration_images"))
    floor = baseline_score(described, task.scoring) - ctx.spec("compress.budget").max_accuracy_drop
    int8 = Int8Plan.from_spec(ctx.spec("compress.quantization"),
                              PROFILES[ctx.spec("target").hardware].int8_weight_bits, floor)
    model, _ = load_model(ctx.input("model"))
    return kind(model, ctx.input("model"), described["variants"]["trained"], config, splits.val, splits.test,
                calibration, int8, task)


def main(ctx: StageContext) -> None:
    export(ctx, classifier_export(ctx))


if __name__ == "__main__":
    from core.contracts.classification.export import CONTRACT

    run_stage(CONTRACT, main)
