"""The classification train stage's contract."""

from __future__ import annotations

from core.contract import PlotInfo, StageInfo
from core.contracts import SEARCH_OUTPUTS

CONTRACT = StageInfo(
    name="train",
    summary=(
        "Train the spec's timm backbone with Lightning on the pruned training split (optuna search first"
        " when train.hpo is set)"
    ),
    params=("task", "seed", "classes", "augment", "model", "train"),
    inputs={"images": "ingest.images", "manifest": "ingest.manifest", "split": "prune.split"},
    outs={"model": "models/{project}/train"},
    reports={"augmentations": "reports/{project}/train/augmentations.png"},
    metrics={"metrics": "reports/{project}/train/metrics.json"},
    plots=(
        PlotInfo(
            "accuracy",
            "reports/{project}/train/history.csv",
            x="epoch",
            y=("val_accuracy",),
            title="Validation accuracy per epoch",
        ),
        PlotInfo(
            "loss",
            "reports/{project}/train/history.csv",
            x="epoch",
            y=("train_loss", "val_loss"),
            title="Training and validation loss per epoch",
        ),
    ),
    optional=(SEARCH_OUTPUTS,),
)
