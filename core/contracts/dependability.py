"""What every task's dependability stage writes and reads alike; each task's contract adds the rest."""

from __future__ import annotations

from core.contract import StageInfo

BASE = StageInfo(
    name="dependability",
    inputs={"images": "ingest.images", "split": "prune.split", "deployable": "export.deployable",
            "candidates": "compress.candidates"},
    outs={"serving_state": "models/{project}/dependability"},
    reports={"ood": "reports/{project}/dependability/ood.json",
             "robustness_png": "reports/{project}/dependability/robustness.png",
             "reliability_png": "reports/{project}/dependability/reliability.png",
             "ood_scores_png": "reports/{project}/dependability/ood_scores.png",
             "gradcam_png": "reports/{project}/dependability/gradcam.png"},
    metrics={"metrics": "reports/{project}/dependability/metrics.json"},
    reads_paths_of=("dependability.ood.ood_sources",),
)
