"""The classification prune stage's contract."""

from __future__ import annotations

from core.contract import PlotInfo, StageInfo

CONTRACT = StageInfo(
    name="prune",
    summary="Keep the most useful data.pruning.budget share of each class of the training split",
    params=("seed", "data.pruning"),
    inputs={"split": "split.split", "embeddings": "embed.embeddings"},
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
)
