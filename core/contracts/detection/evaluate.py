"""The detection evaluate stage's contract."""

from __future__ import annotations

from dataclasses import replace

from core.contract import PlotInfo
from core.contracts.evaluate import BASE

CONTRACT = replace(
    BASE,
    summary=("Measure the trained detector on the test split: COCO mAP (torchmetrics, faster_coco_eval), per-class AP,"
             " precision-recall curves, a confusion matrix with background, the worst images"),
    params=("classes", "detection.confidence_threshold"),
    inputs={"images": "ingest.images", "boxes": "ingest.boxes", "split": "split.split", "model": "train.model"},
    reports={**BASE.reports, "worst": "reports/{project}/evaluate/worst.png"},
    plots=(PlotInfo("precision_recall", "reports/{project}/evaluate/precision_recall.csv", x="recall",
                    y=("precision_{class}",), title="Precision-recall per class at IoU 0.5 (test split)"),
           PlotInfo("confusion", "reports/{project}/evaluate/confusion.csv", x="actual", y=("predicted",),
                    template="confusion", title="Detections vs truth at IoU 0.5, with background (test split)")),
    module_name="stages.detection.evaluate",
    task="detection",
)
