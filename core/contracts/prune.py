"""What every task's prune stage writes and reads alike; each task's contract adds the rest."""

from __future__ import annotations

from core.contract import PlotInfo, StageInfo

BASE = StageInfo(
    name="prune",
    inputs={"split": "split.split", "embeddings": "embed.embeddings"},
    outs={"pruned": "data/{project}/prune"},
    files={"split": "data/{project}/prune/split.csv"},
    reports={"projection_png": "reports/{project}/prune/projection.png"},
    metrics={"summary": "reports/{project}/prune/summary.json"},
    plots=(PlotInfo("projection", "reports/{project}/prune/projection.csv", x="x", y=("y",), template="scatter",
                    title="Training embeddings (PCA): kept vs dropped"),),
)
