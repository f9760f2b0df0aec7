"""The detection dependability stage's contract."""

from __future__ import annotations

from dataclasses import replace

from core.contract import PlotInfo
from core.contracts.dependability import BASE

CONTRACT = replace(
    BASE,
    summary=("Measure the deployable detector where the test split does not look: mAP under corruptions (boxes kept), "
             "image-level OOD from pooled features, D-ECE with a fitted temperature, EigenCAM"),
    params=("seed", "augment", "data.synthesize", "dependability.ood.detector", "dependability.ood.ood_sources",
            "dependability.robustness.corruptions", "dependability.robustness.severities", "dependability.explain"),
    inputs={"images": "ingest.images", "boxes": "ingest.boxes", "split": "prune.split",
            "deployable": "export.deployable", "candidates": "compress.candidates"},
    plots=(PlotInfo("robustness", "reports/{project}/dependability/robustness.csv", x="map", y=("condition",),
                    template="bar_horizontal", title="Test mAP50-95 per corruption and severity"),
           PlotInfo("reliability", "reports/{project}/dependability/reliability.csv", x="confidence", y=("precision",),
                    title="Box confidence reliability after temperature scaling (test split)")),
    module_name="stages.detection.dependability",
    task="detection",
)
