"""gate (multi-label): may this tagger reach serving? Every measured figure against the spec's thresholds.

The same verdict, report and failure as for other tasks (stages.judging.judge), with a tagger's checks: test mAP
over tags (dependability.min_map), the weakest tag's AP (min_tag_ap), OOD, each corruption family's mAP drop,
the tag probabilities' ECE after temperature scaling, and the budget with its drop read as validation mAP.
"""

from __future__ import annotations

from core.fsutil import read_json
from core.spec.deployment import CompressionBudget
from stages.judging import judge
from stages.runtime import StageContext, run_stage
from vision.dependability.tag_report import TAGGING_PAGES
from vision.dependability.tag_verdict import TagThresholds, tag_checks
from vision.dependability.verdict import budget_checks


def main(ctx: StageContext) -> None:
    limits = TagThresholds(ctx.spec("dependability.min_map"), ctx.spec("dependability.min_tag_ap"),
                           ctx.spec("dependability.ood.min_auroc"), ctx.spec("dependability.ood.max_accepted_fraction"),
                           ctx.spec("dependability.robustness.max_accuracy_drop"),
                           ctx.spec("dependability.calibration").max_ece)
    budget: CompressionBudget = ctx.spec("compress.budget")
    figures, export, ood_report = (read_json(ctx.input(name)) for name in ("figures", "export_summary", "ood"))
    judge(ctx, tag_checks(figures, ood_report, limits) + budget_checks(export, budget, "val_map"), figures, ood_report,
          TAGGING_PAGES)


if __name__ == "__main__":
    from core.contracts.multilabel.gate import CONTRACT

    run_stage(CONTRACT, main)
