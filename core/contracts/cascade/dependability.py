"""The cascade dependability stage's contract."""

from __future__ import annotations

from core.contract import PlotInfo, ProjectInput, StageInfo
from core.contracts.cascade.inputs import CLASSIFIER_RELEASE, DETECTOR_RELEASE

CONTRACT = StageInfo(
    name="dependability",
    summary=("Measure the served pair end to end: mAP under corruptions of the whole image, the share of far "
             "out-of-distribution images it still answers with a named box, and the calibration (D-ECE) of the "
             "combined score"),
    params=("seed", "classes", "cascade", "dependability.robustness.corruptions",
            "dependability.robustness.severities"),
    inputs={"metrics": "evaluate.metrics"},
    project_inputs={
        "detector": DETECTOR_RELEASE, "classifier": CLASSIFIER_RELEASE,
        "images": ProjectInput("cascade.detector", "detection", "ingest.images"),
        "split": ProjectInput("cascade.detector", "detection", "split.split"),
    },
    plots=(PlotInfo("robustness", "reports/{project}/dependability/robustness.csv", x="condition",
                    y=("map", "map50"), template="bar_horizontal",
                    title="The pair's test mAP under each corruption of the whole image"),),
    metrics={"metrics": "reports/{project}/dependability/metrics.json"},
    module_name="stages.cascade.dependability",
    task="cascade",
)
