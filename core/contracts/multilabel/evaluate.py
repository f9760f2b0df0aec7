"""The multi-label evaluate stage's contract."""

from __future__ import annotations

from dataclasses import replace

from core.contract import PlotInfo
from core.contracts.evaluate import BASE

CONTRACT = replace(
    BASE,
    summary=("Measure the trained tagger on the test split at per-tag thresholds chosen on validation: mAP, macro "
             "and micro F1, exact match, per-tag figures, precision-recall curves and the worst-tagged images"),
    inputs={**BASE.inputs, "tags": "ingest.tags"},
    reports={**BASE.reports, "mistakes": "reports/{project}/evaluate/mistakes.png"},
    plots=(PlotInfo("precision_recall", "reports/{project}/evaluate/precision_recall.csv", x="recall",
                    y=("precision",), title="Precision-recall per tag (test split)"),),
    module_name="stages.multilabel.evaluate",
    task="multilabel",
)
