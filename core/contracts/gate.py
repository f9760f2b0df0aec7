"""What every task's gate stage writes and reads alike; each task's contract adds the rest."""

from __future__ import annotations

from core.contract import StageInfo

BASE = StageInfo(
    name="gate",
    # the checks every task has: OOD, corruption drops, calibration, the compression budget
    params=("dependability.ood.min_auroc", "dependability.ood.max_accepted_fraction",
            "dependability.robustness.max_accuracy_drop", "dependability.calibration", "compress.budget"),
    inputs={"figures": "dependability.metrics", "export_summary": "export.summary", "ood": "dependability.ood",
            "robustness_png": "dependability.robustness_png", "reliability_png": "dependability.reliability_png",
            "ood_scores_png": "dependability.ood_scores_png", "gradcam_png": "dependability.gradcam_png",
            "deployable": "export.deployable", "serving_state": "dependability.serving_state"},
    reports={"report_html": "reports/{project}/dependability.html", "summary_md": "reports/{project}/gate/summary.md"},
    metrics={"verdict": "reports/{project}/gate/verdict.json"},
)
