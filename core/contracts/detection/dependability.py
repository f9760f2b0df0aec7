"""The detection dependability stage's contract."""

from __future__ import annotations

from core.contract import PlotInfo, StageInfo

CONTRACT = StageInfo(
    name="dependability",
    summary=(
        "Measure the deployable detector where the test split does not look: mAP under corruptions "
        "(boxes kept), image-level OOD from pooled features, D-ECE with a fitted temperature, EigenCAM"
    ),
    params=(
        "seed",
        "augment",
        "data.synthesize",
        "dependability.ood.detector",
        "dependability.ood.ood_sources",
        "dependability.robustness.corruptions",
        "dependability.robustness.severities",
        "dependability.explain",
    ),
    inputs={
        "images": "ingest.images",
        "boxes": "ingest.boxes",
        "split": "prune.split",
        "deployable": "export.deployable",
        "candidates": "compress.candidates",
    },
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
            x="map",
            y=("condition",),
            template="bar_horizontal",
            title="Test mAP50-95 per corruption and severity",
        ),
        PlotInfo(
            "reliability",
            "reports/{project}/dependability/reliability.csv",
            x="confidence",
            y=("precision",),
            title="Box confidence reliability after temperature scaling (test split)",
        ),
    ),
    reads_paths_of=("dependability.ood.ood_sources",),
    module_name="stages.detection.dependability",
    task="detection",
)
