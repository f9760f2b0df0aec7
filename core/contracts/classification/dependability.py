"""The classification dependability stage's contract."""

from __future__ import annotations

from dataclasses import replace

from core.contract import PlotInfo
from core.contracts.dependability import BASE

CONTRACT = replace(
    BASE,
    summary=("Measure the deployable ONNX model where the test split does not look: out-of-distribution detection, "
             "corruptions, calibration, and Grad-CAM checked with ROAD"),
    params=("seed", "augment", "dependability.ood.detector", "dependability.ood.ood_sources",
            "dependability.robustness.corruptions", "dependability.robustness.severities", "dependability.explain",
            "active_learning.ensemble"),
    optional_inputs={**BASE.optional_inputs, "ensemble": ("ensemble.members", "active_learning.ensemble")},
    plots=(PlotInfo("robustness", "reports/{project}/dependability/robustness.csv", x="accuracy", y=("condition",),
                    template="bar_horizontal", title="Test accuracy per corruption and severity"),
           PlotInfo("reliability", "reports/{project}/dependability/reliability.csv", x="confidence", y=("accuracy",),
                    title="Reliability after temperature scaling (test split)")),
)
