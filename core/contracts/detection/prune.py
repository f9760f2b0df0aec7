"""The detection prune stage's contract."""

from __future__ import annotations

from core.contract import PlotInfo, StageInfo

CONTRACT = StageInfo(
    name="prune",
    summary=(
        "Keep the most useful data.pruning.budget share of the training split, and at least "
        "data.boxes.min_instances_per_class boxes of every class"
    ),
    params=("seed", "data.pruning", "data.boxes.min_instances_per_class"),
    inputs={"split": "split.split", "embeddings": "embed.embeddings", "boxes": "ingest.boxes"},
    outs={"pruned": "data/{project}/prune"},
    files={"split": "data/{project}/prune/split.csv"},
    reports={"projection_png": "reports/{project}/prune/projection.png"},
    metrics={"summary": "reports/{project}/prune/summary.json"},
    plots=(
        PlotInfo(
            "projection",
            "reports/{project}/prune/projection.csv",
            x="x",
            y=("y",),
            template="scatter",
            title="Training embeddings (PCA): kept vs dropped",
        ),
    ),
    module_name="stages.detection.prune",
    task="detection",
)
