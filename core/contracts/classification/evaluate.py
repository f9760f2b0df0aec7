"""The classification evaluate stage's contract."""

from __future__ import annotations

from dataclasses import replace

from core.contract import PlotInfo
from core.contracts.evaluate import BASE

CONTRACT = replace(
    BASE,
    summary=("Measure the trained model on the test split: accuracy, macro-F1, per-class figures, confusions and a "
             "gallery of mistakes"),
    params=("task",),
    reports={**BASE.reports, "top_confusions": "reports/{project}/evaluate/top_confusions.json",
             "misclassified": "reports/{project}/evaluate/misclassified.png"},
    plots=(PlotInfo("confusion", "reports/{project}/evaluate/confusion.csv", x="actual", y=("predicted",),
                    template="confusion", title="Confusion matrix (test split)"),),
)
