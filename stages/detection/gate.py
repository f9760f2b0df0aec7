"""gate (detection): may this detector reach serving? Every measured figure against the spec's thresholds.

The same verdict, report and failure as for classifiers (stages.judging.judge), with a detector's checks: test
mAP50-95 and mAP50 (dependability.min_map, min_map50), image-level OOD, the mAP50-95 drop of each corruption
family, D-ECE after temperature scaling, and the budget with its drop read as validation mAP50-95.
"""

from __future__ import annotations

from core.fsutil import read_json
from core.spec.deployment import CompressionBudget
from stages.judging import judge
from stages.runtime import StageContext, run_stage
from vision.dependability.report import DETECTION_PAGES
from vision.dependability.verdict import DetectionThresholds, budget_checks, detection_checks


def main(ctx: StageContext) -> None:
    limits = DetectionThresholds(ctx.spec("dependability.min_map"), ctx.spec("dependability.min_map50"),
                                 ctx.spec("dependability.ood.min_auroc"),
                                 ctx.spec("dependability.ood.max_accepted_fraction"),
                                 ctx.spec("dependability.robustness.max_accuracy_drop"),
                                 ctx.spec("dependability.calibration").max_ece)
    budget: CompressionBudget = ctx.spec("compress.budget")
    figures, export, ood_report = (read_json(ctx.input(name)) for name in ("figures", "export_summary", "ood"))
    judge(ctx, detection_checks(figures, ood_report, limits) + budget_checks(export, budget, "val_map"), figures,
          ood_report, DETECTION_PAGES)


if __name__ == "__main__":
    from core.contracts.detection.gate import CONTRACT

    run_stage(CONTRACT, main)
