"""The classification compress stage's contract."""

from __future__ import annotations

from dataclasses import replace

from core.contract import PlotInfo
from core.contracts.compress import BASE

CONTRACT = replace(
    BASE,
    summary=("Prune (torch-pruning) and distill the trained model toward compress.budget; export every candidate to "
             "ONNX and check it against torch"),
    params=("seed", "augment", "train.optimizer", "train.scheduler", "train.batch_size", "train.epochs",
            "train.label_smoothing", "train.select_by", "train.balance", "compress.budget", "compress.methods",
            "compress.importance", "compress.prune_steps", "compress.max_prune_ratio", "compress.finetune_epochs",
            "compress.finetune_min_steps", "compress.distillation", "compress.student", "compress.allocation",
            "compress.sparse_training", "compress.quantization", "compress.calibration_images", "target"),
    plots=(PlotInfo("rounds", "reports/{project}/compress/rounds.csv", x="params", y=("val_accuracy",),
                    template="scatter", title="Pruning rounds: parameters vs validation accuracy"),),
)
