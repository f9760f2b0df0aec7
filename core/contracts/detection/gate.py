"""The detection gate stage's contract."""

from __future__ import annotations

from core.contract import StageInfo

CONTRACT = StageInfo(
    name="gate",
    summary=(
        "Judge the detector's figures against the spec's thresholds (mAP50-95, mAP50, OOD, corruption "
        "drops, D-ECE, budget), write the verdict and the report, and fail on any unmet threshold"
    ),
    params=(
        "dependability.min_map",
        "dependability.min_map50",
        "dependability.ood.min_auroc",
        "dependability.ood.max_accepted_fraction",
        "dependability.robustness.max_accuracy_drop",
        "dependability.calibration",
        "compress.budget",
    ),
    inputs={
        "figures": "dependability.metrics",
        "export_summary": "export.summary",
        "ood": "dependability.ood",
        "robustness_png": "dependability.robustness_png",
        "reliability_png": "dependability.reliability_png",
        "ood_scores_png": "dependability.ood_scores_png",
        "gradcam_png": "dependability.gradcam_png",
        "deployable": "export.deployable",
        "serving_state": "dependability.serving_state",
    },
    reports={"report_html": "reports/{project}/dependability.html", "summary_md": "reports/{project}/gate/summary.md"},
    metrics={"verdict": "reports/{project}/gate/verdict.json"},
    data_files=("vision/dependability/templates/dependability_detection.html.j2",),
    module_name="stages.detection.gate",
    task="detection",
)
