"""The classification train stage's contract."""

from __future__ import annotations

from dataclasses import replace

from core.contract import PlotInfo
from core.contracts.train import BASE, LOSS_PLOT

CONTRACT = replace(
    BASE,
    summary=("Train the spec's timm backbone with Lightning on the pruned training split (optuna search first when "
             "train.hpo is set)"),
    # the target and its latency budget: what `model: auto` sizes the model for (core.model_choice)
    params=("task", "seed", "classes", "augment", "model", "train", "target.hardware",
            "compress.budget.max_latency_ms"),
    inputs={"images": "ingest.images", "manifest": "ingest.manifest", "split": "prune.split"},
    plots=(PlotInfo("accuracy", "reports/{project}/train/history.csv", x="epoch", y=("val_accuracy",),
                    title="Validation accuracy per epoch"),
           LOSS_PLOT),
)
