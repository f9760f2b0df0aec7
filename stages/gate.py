"""gate: may this model reach serving? Every measured figure against the spec's thresholds.

Reads the dependability and export figures, writes the verdict (each check,
measured value, limit, margin, pass/fail), the HTML report and a markdown
summary, and exits non-zero with one line per failed check when any fails, so
`dvc repro` stops before anything that would promote the model.
"""

from __future__ import annotations

from compiler.content import digest_of_hashes
from compiler.fsutil import write_text_atomically
from compiler.spec.deployment import CompressionBudget
from serving.bundle import IncompleteBundle, bundle_members, file_hashes
from stages._cli import StageContext, StageFailure, read_json, run_stage, write_json
from stages._report import FIGURES, render_html, render_markdown
from stages._verdict import Thresholds, budget_checks, dependability_checks, verdict


def judged_files(ctx: StageContext) -> dict[str, object]:
    """The sha256 of every file of the bundle the figures describe, and their bundle digest: promote serves
    only these bytes, and `autodl compile --check` binds the promotion record to them."""
    folders = {stage: ctx.path(f"models/{{project}}/{stage}") for stage in ("export", "dependability")}
    try:
        hashes = file_hashes(bundle_members(folders))
    except IncompleteBundle as exc:
        raise StageFailure(str(exc)) from None
    return {"files": hashes, "digest": f"sha256:{digest_of_hashes(hashes)}"}


def main(ctx: StageContext) -> None:
    limits = Thresholds.from_params(ctx.params["dependability"])
    budget = CompressionBudget.model_validate(ctx.params["compress"]["budget"])
    figures, export, ood_report = read_json(ctx.dep(0)), read_json(ctx.dep(1)), read_json(ctx.dep(2))
    checks = dependability_checks(figures, ood_report, limits) + budget_checks(export, budget)
    result = verdict(ctx.project, figures["variant"], checks)
    result["judged"] = judged_files(ctx)
    images = dict(zip(FIGURES, (ctx.dep(i) for i in range(3, 3 + len(FIGURES))), strict=True))
    html_path, markdown_path = (ctx.path(p) for p in ctx.info.reports)
    write_json(ctx.metric(), result)
    write_text_atomically(html_path, render_html(ctx.project, result, checks, figures, ood_report, images))
    write_text_atomically(markdown_path, render_markdown(ctx.project, result, checks, figures))
    if not result["passed"]:
        failed = [c for c in checks if not c.passed]
        raise StageFailure(f"gate: {len(failed)} of {len(checks)} checks failed for {ctx.project} "
                           f"({figures['variant']}); nothing will be promoted. Report: {html_path}\n"
                           + "\n".join(f"  - {c.line()}" for c in failed))
    print(f"gate: all {len(checks)} checks passed for {ctx.project} ({figures['variant']}); report: {html_path}")


if __name__ == "__main__":
    run_stage("gate", main)
