"""The classification dependability stage's contract."""

from __future__ import annotations

from core.contract import PlotInfo, StageInfo

CONTRACT = StageInfo(
    name="dependability",
    summary=(
        "Measure the deployable ONNX model where the test split does not look: out-of-distribution "
        "detection, corruptions, calibration, and Grad-CAM checked with ROAD"
    ),
    params=(
        "seed",
        "augment",
        "dependability.ood.detector",
        "dependability.ood.ood_sources",
        "dependability.robustness.corruptions",
        "dependability.robustness.severities",
        "dependability.explain",
        "active_learning.ensemble",
    ),
    inputs={
        "images": "ingest.images",
        "split": "prune.split",
        "deployable": "export.deployable",
        "candidates": "compress.candidates",
    },
    optional_inputs={"ensemble": ("ensemble.members", "active_learning.ensemble")},
    outs={"serving_state": "models/{project}/dependability"},
    reports={
        "ood": "reports/{project}/dependability/ood.json",
        "robustness_png": "reports/{project}/dependability/robustness.png",
        "reliability_png": "reports/{project}/dependability/reliability.png",
        "ood_scores_png": "reports/{project}/dependability/ood_scores.png",
        "gradcam_png": "reports/{project}/dependability/gradcam.png",
    },
    metrics={"metrics": "reports/{project}/dependability/metrics.json"},
    plots=(
        PlotInfo(
            "robustness",
            "reports/{project}/dependability/robustness.csv",
            x="accuracy",
            y=("condition",),
            template="bar_horizontal",
            title="Test accuracy per corruption and severity",
        ),
        PlotInfo(
            "reliability",
            "reports/{project}/dependability/reliability.csv",
            x="confidence",
            y=("accuracy",),
            title="Reliability after temperature scaling (test split)",
        ),
    ),
    reads_paths_of=("dependability.ood.ood_sources",),
)
