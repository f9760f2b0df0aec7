"""gate: may this model reach serving? Every measured figure against the spec's thresholds.

Reads the dependability and export figures, writes the verdict (each check,
measured value, limit, margin, pass/fail), the HTML report and a markdown
summary, and exits non-zero with one line per failed check when any fails, so
`dvc repro` stops before anything that would promote the model.
"""

from __future__ import annotations

from core.fsutil import read_json
from core.spec.deployment import CompressionBudget
from stages.judging import judge
from stages.runtime import StageContext, run_stage
from vision.dependability.report import CLASSIFICATION_PAGES
from vision.dependability.verdict import (
    Thresholds,
    budget_checks,
    dependability_checks,
)


def main(ctx: StageContext) -> None:
    limits = Thresholds.from_spec(ctx.spec("dependability.min_accuracy"), ctx.spec("dependability.ood.min_auroc"),
                                  ctx.spec("dependability.ood.max_accepted_fraction"),
                                  ctx.spec("dependability.robustness.max_accuracy_drop"),
                                  ctx.spec("dependability.calibration"), ctx.spec("dependability.min_class_recall"))
    budget: CompressionBudget = ctx.spec("compress.budget")
    figures, export, ood_report = (read_json(ctx.input(name)) for name in ("figures", "export_summary", "ood"))
    checks = dependability_checks(figures, ood_report, limits) + budget_checks(export, budget)
    judge(ctx, checks, figures, ood_report, CLASSIFICATION_PAGES)


if __name__ == "__main__":
    from core.contracts.classification.gate import CONTRACT

    run_stage(CONTRACT, main)
