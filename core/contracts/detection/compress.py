"""The detection compress stage's contract."""

from __future__ import annotations

from dataclasses import replace

from core.contract import PlotInfo
from core.contracts.compress import BASE

CONTRACT = replace(
    BASE,
    summary=("Prune the whole detector (torch-pruning over backbone, neck and head) toward compress.budget, with and "
             "without distillation from the trained detector; export every candidate to ONNX and check its decoded "
             "detections against torch"),
    params=("seed", "classes", "augment", "train.optimizer", "train.scheduler", "train.batch_size", "train.epochs",
            "train.select_by", "compress.budget", "compress.methods", "compress.importance", "compress.prune_steps",
            "compress.max_prune_ratio", "compress.finetune_epochs", "compress.finetune_min_steps",
            "compress.distillation", "compress.allocation", "detection.min_visibility",
            "detection.confidence_threshold", "detection.tiling", "compress.student", "compress.student_head"),
    inputs={"images": "ingest.images", "boxes": "ingest.boxes", "split": "prune.split", "model": "train.model"},
    plots=(PlotInfo("rounds", "reports/{project}/compress/rounds.csv", x="params", y=("val_map",), template="scatter",
                    title="Pruning rounds: parameters vs validation mAP50-95"),),
    module_name="stages.detection.compress",
    task="detection",
)
