"""gate (cascade): judge the pair end to end, and only the very files each model's own gate passed.

Checks: end-to-end mAP50-95 and mAP50 over the fine classes against the spec's floors; each model's own verdict
passed and judged exactly the bundle the cascade ran (a model re-trained since would otherwise ride on figures it
never earned). The verdict records the sha256 of every file of the release-to-be (detector/..., classifier/...,
cascade.json): promote copies exactly these, and `autodl compile --check` binds the promotion record to them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.content import digest_of_hashes, tree_files
from core.fsutil import read_json, write_json, write_text_atomically
from runtime.bundle import file_hashes
from runtime.cascade import MEMBERS, SETTINGS_FILE
from stages.runtime import StageContext, StageFailure, run_stage
from vision.dependability.verdict import Check, verdict


def release_members(detector: Path, classifier: Path, settings: Path) -> dict[str, Path]:
    """Every file of the cascade's release, keyed by its path inside it."""
    members = {f"{name}/{relative}": path for name, folder in zip(MEMBERS, (detector, classifier), strict=True)
               for relative, path in tree_files(folder).items()}
    return dict(sorted({**members, SETTINGS_FILE: settings}.items()))


def own_gate_checks(project: str, role: str, verdict_file: dict[str, Any], release: Path) -> list[str]:
    """Why the model's own verdict does not vouch for the release the cascade ran (empty when it does)."""
    problems = []
    if verdict_file.get("passed") is not True:
        problems.append(f"the {role} '{project}' did not pass its own gate")
    judged = ((verdict_file.get("judged") or {}).get("files")) or {}
    if file_hashes(tree_files(release)) != judged:
        problems.append(f"the release of the {role} '{project}' is not the bundle its gate judged: run `dvc repro`")
    return problems


def dependability_checks(figures: dict[str, Any], max_drop: float, max_answered: float, max_ece: float
                         ) -> list[Check]:
    """The pair's corruption drops, its answers on far images and its combined score's calibration."""
    checks = [Check(f"robustness.{name}", "dependability.robustness.max_accuracy_drop", family["drop"], max_drop,
                    "<=", f"train both models with {name} among their augmentations (augment.{name})")
              for name, family in figures["robustness"]["families"].items()]
    checks.append(Check("ood_answered_fraction", "dependability.ood.max_accepted_fraction",
                        figures["ood"]["worst_answered_fraction"], max_answered, "<=",
                        "tighten the detector's OOD (its dependability.ood) or the classifier's: either abstaining "
                        "keeps a far image unanswered"))
    checks.append(Check("calibration_dece", "dependability.calibration.max_ece", figures["calibration"]["dece"],
                        max_ece, "<=", "calibrate the weaker model: each project's own temperature is fitted on "
                        "its validation split"))
    return checks


def main(ctx: StageContext) -> None:
    metrics = read_json(ctx.input("metrics"))
    settings_file = ctx.input("settings") / SETTINGS_FILE
    settings = read_json(settings_file)
    checks = [
        Check("cascade mAP50-95", "dependability.min_map", metrics["map"], ctx.spec("dependability.min_map"), ">=",
              "improve the weaker stage: compare detector_map (the detector on its own classes) with the "
              "end-to-end figure, per class in reports/<project>/evaluate/per_class.csv"),
        Check("cascade mAP50", "dependability.min_map50", metrics["map50"], ctx.spec("dependability.min_map50"),
              ">=", "a low mAP50 beside a fair detector_map50 points at the classifier: more crops per class"),
        *dependability_checks(read_json(ctx.input("figures")), ctx.spec("dependability.robustness.max_accuracy_drop"),
                              ctx.spec("dependability.ood.max_accepted_fraction"),
                              ctx.spec("dependability.calibration").max_ece),
    ]
    problems = [*own_gate_checks(settings["detector"], "detector", read_json(ctx.input("detector_verdict")),
                                 ctx.input("detector")),
                *own_gate_checks(settings["classifier"], "classifier", read_json(ctx.input("classifier_verdict")),
                                 ctx.input("classifier"))]
    result = verdict(ctx.project, f"{settings['detector']} + {settings['classifier']}", checks, problems)
    result["passed"] = result["passed"] and not problems
    result["failed"] = [*result["failed"], *problems]
    hashes = file_hashes(release_members(ctx.input("detector"), ctx.input("classifier"), settings_file))
    result["judged"] = {"files": hashes, "digest": f"sha256:{digest_of_hashes(hashes)}"}
    write_json(ctx.output("verdict"), result)
    write_text_atomically(ctx.output("summary_md"), summary(ctx.project, result, checks, problems, metrics))
    if not result["passed"]:
        failed = [c.line() for c in checks if not c.passed] + problems
        raise StageFailure(f"gate: the cascade {ctx.project} is not promoted:\n" + "\n".join(f"  - {line}"
                                                                                         for line in failed))
    print(f"gate: all {len(checks)} checks passed for the cascade {ctx.project} (both models' own gates passed)")


def summary(project: str, result: dict[str, Any], checks: list[Check], problems: list[str],
            metrics: dict[str, Any]) -> str:
    """The pull request's view: each check, both models' gates, and the baseline beside the cascade."""
    lines = [f"## Gate: cascade {project}: {'PASSED' if result['passed'] else 'FAILED'}", "",
             "| check | measured | limit | margin | result |", "|---|---:|---:|---:|---|",
             *(f"| {c.name} | {c.measured:g} | {c.rule} {c.threshold:g} | {c.margin:+g} | "
               f"{'pass' if c.passed else 'FAIL'} |" for c in checks), ""]
    lines += [f"- {problem}" for problem in problems] or ["- Both models passed their own gates with these bundles."]
    if "baseline_map" in metrics:
        lines += ["", f"Single-stage baseline on the same test images: mAP50-95 {metrics['baseline_map']:.4f}, mAP50 "
                      f"{metrics['baseline_map50']:.4f} (cascade {metrics['map']:.4f}, {metrics['map50']:.4f})."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    from core.contracts.cascade.gate import CONTRACT

    run_stage(CONTRACT, main)
