"""The classification evaluate stage's contract."""

from __future__ import annotations

from core.contract import PlotInfo, StageInfo

CONTRACT = StageInfo(
    name="evaluate",
    summary=(
        "Measure the trained model on the test split: accuracy, macro-F1, per-class figures, confusions "
        "and a gallery of mistakes"
    ),
    params=("task",),
    inputs={"images": "ingest.images", "split": "split.split", "model": "train.model"},
    reports={
        "per_class": "reports/{project}/evaluate/per_class.json",
        "top_confusions": "reports/{project}/evaluate/top_confusions.json",
        "misclassified": "reports/{project}/evaluate/misclassified.png",
    },
    metrics={"metrics": "reports/{project}/evaluate/metrics.json"},
    plots=(
        PlotInfo(
            "confusion",
            "reports/{project}/evaluate/confusion.csv",
            x="actual",
            y=("predicted",),
            template="confusion",
            title="Confusion matrix (test split)",
        ),
    ),
)
