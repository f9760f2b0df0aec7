"""The multi-label dependability stage's contract."""

from __future__ import annotations

from dataclasses import replace

from core.contract import PlotInfo
from core.contracts.dependability import BASE

CONTRACT = replace(
    BASE,
    summary=("Measure the deployable tagger where the test split does not look: out-of-distribution detection, mAP "
             "over tags under corruptions, and calibration of every tag's probability"),
    params=("seed", "augment", "dependability.ood.detector", "dependability.ood.ood_sources",
            "dependability.robustness.corruptions", "dependability.robustness.severities"),
    inputs={**BASE.inputs, "tags": "ingest.tags"},
    reports={name: path for name, path in BASE.reports.items() if name != "gradcam_png"},
    plots=(PlotInfo("robustness", "reports/{project}/dependability/robustness.csv", x="map", y=("condition",),
                    template="bar_horizontal", title="Test mAP over tags per corruption and severity"),
           PlotInfo("reliability", "reports/{project}/dependability/reliability.csv", x="confidence",
                    y=("share_tagged",), title="Tag reliability after temperature scaling (test split)")),
    module_name="stages.multilabel.dependability",
    task="multilabel",
)
