"""The gate's judgement, whatever the task: the verdict (every check, its measured value, limit, margin and
result, and the bundle's files it judged), the task's HTML report and pull-request summary, and one line per
unmet check as the stage's failure. Each task's gate module builds its checks and calls `judge`."""

from __future__ import annotations

from typing import Any

from core.content import digest_of_hashes
from core.fsutil import write_json, write_text_atomically
from runtime.bundle import IncompleteBundle, bundle_members, file_hashes
from stages.runtime import StageContext, StageFailure
from vision.dependability.report import ReportPages
from vision.dependability.verdict import Check, verdict, warnings


def judged_files(ctx: StageContext) -> dict[str, object]:
    """The sha256 of every file of the bundle the figures describe, and their bundle digest: promote serves
    only these bytes, and `autodl compile --check` binds the promotion record to them."""
    folders = {"export": ctx.input("deployable"), "dependability": ctx.input("serving_state")}
    try:
        hashes = file_hashes(bundle_members(folders))
    except IncompleteBundle as exc:
        raise StageFailure(str(exc)) from None
    return {"files": hashes, "digest": f"sha256:{digest_of_hashes(hashes)}"}


def judge(ctx: StageContext, checks: list[Check], figures: dict[str, Any], ood_report: dict[str, Any],
          pages: ReportPages) -> None:
    """Write the verdict, the task's HTML report and markdown summary; fail with one line per unmet check."""
    result = verdict(ctx.project, figures["variant"], checks, warnings(figures))
    result["judged"] = judged_files(ctx)
    images = {figure: ctx.input(f"{figure}_png") for figure in pages.figures}
    html_path, markdown_path = ctx.output("report_html"), ctx.output("summary_md")
    write_json(ctx.output("verdict"), result)
    write_text_atomically(html_path, pages.html(ctx.project, result, checks, figures, ood_report, images))
    write_text_atomically(markdown_path, pages.markdown(ctx.project, result, checks, figures))
    for note in result["warnings"]:
        print(f"gate: WARNING {note}")
    if not result["passed"]:
        failed = [c for c in checks if not c.passed]
        raise StageFailure(f"gate: {len(failed)} of {len(checks)} checks failed for {ctx.project} "
                           f"({figures['variant']}); nothing will be promoted. Report: {html_path}\n"
                           + "\n".join(f"  - {c.line()}" for c in failed))
    print(f"gate: all {len(checks)} checks passed for {ctx.project} ({figures['variant']}); report: {html_path}")
