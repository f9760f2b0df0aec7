"""What every task's train stage writes and reads alike; each task's contract adds the rest."""

from __future__ import annotations

from core.contract import PlotInfo, StageInfo
from core.contracts import SEARCH_OUTPUTS

BASE = StageInfo(
    name="train",
    inputs={"images": "ingest.images", "split": "prune.split"},
    outs={"model": "models/{project}/train"},
    reports={"augmentations": "reports/{project}/train/augmentations.png"},
    metrics={"metrics": "reports/{project}/train/metrics.json"},
    optional=(SEARCH_OUTPUTS,),
)

LOSS_PLOT = PlotInfo("loss", "reports/{project}/train/history.csv", x="epoch", y=("train_loss", "val_loss"),
                     title="Training and validation loss per epoch")
"""Every task's training history holds both losses per epoch."""
