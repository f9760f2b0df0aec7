"""dependability (cascade): the served pair where its test images do not look (vision.cascade.dependability).

Both models run from their releases through runtime.cascade: with abstention off for the corruption sweep and the
calibration (they describe the models), with the server's abstention for the out-of-distribution sets (they
describe what serving answers). The gate judges the figures against the cascade spec's dependability section.
"""

from __future__ import annotations

from core.fsutil import read_json, write_csv, write_json
from core.progress import Progress
from runtime.artifact import Artifact
from stages.runtime import StageContext, StageFailure, run_stage
from vision.cascade.dependability import combined_dece, families, far_sets, ood_figures, sweep
from vision.cascade.evaluation import Change, figures, held_out_images, run_cascade


def main(ctx: StageContext) -> None:
    seed: int = ctx.spec("seed")
    classes: list[str] = list(ctx.spec("classes"))
    section = ctx.spec("cascade")
    corruptions: list[str] = list(ctx.spec("dependability.robustness.corruptions"))
    severities: list[int] = list(ctx.spec("dependability.robustness.severities"))
    folders = {name: [ctx.input(name)] for name in ("detector", "classifier")}
    measured = {name: Artifact.load(folder, abstain_on_ood=False) for name, folder in folders.items()}
    served = {name: Artifact.load(folder) for name, folder in folders.items()}
    try:
        images = held_out_images(ctx.input("images"), ctx.input("split"), classes, measured["detector"].classes)
    except ValueError as exc:
        raise StageFailure(str(exc)) from None
    if not images:
        raise StageFailure(f"{section.detector} has no test images: the pair has nothing to be measured on")
    evaluation = read_json(ctx.input("metrics"))
    clean_map, clean_map50 = (max(float(evaluation[key]), 0.0) for key in ("map", "map50"))

    def run(change: Change | None, pair: dict[str, Artifact] = measured) -> list:
        return run_cascade(pair["detector"], pair["classifier"], ctx.input("images"), images, section.padding, change)

    with Progress("dependability: corruptions", len(corruptions) * len(severities), unit="condition") as shown:
        try:
            rows = sweep(run, images, classes, corruptions, severities, seed, figures,
                         lambda row: shown.update(1, f"{row.corruption} s{row.severity} mAP {row.map:.3f}"))
        except ValueError as exc:
            raise StageFailure(f"dependability.robustness.corruptions: {exc}") from None
    clean = run(None)
    side = max(served["detector"].decode((ctx.input("images") / images[0].path).read_bytes()).size)
    ood = ood_figures(served["detector"], served["classifier"], section.padding, run(None, served),
                      far_sets(side, seed))
    write_csv(ctx.output("robustness"), [{"condition": f"{r.corruption} s{r.severity}", "map": r.map,
                                          "map50": r.map50} for r in rows]
              + [{"condition": "clean", "map": round(clean_map, 6), "map50": round(clean_map50, 6)}])
    by_family, calibration = families(clean_map, rows), combined_dece(clean, images, classes)
    write_json(ctx.output("metrics"), {
        "map": round(clean_map, 6), "robustness": {"rows": [r.__dict__ for r in rows], "families": by_family},
        "ood": ood, "calibration": calibration})
    worst = max(by_family.items(), key=lambda item: item[1]["drop"], default=None)
    print(f"dependability: the pair answers {ood['worst_answered_fraction']:.3f} of the worst far set; "
          + (f"worst corruption {worst[0]} (mAP drop {worst[1]['drop']:.4f}); " if worst else "")
          + f"combined-score D-ECE {calibration['dece']:.4f}")


if __name__ == "__main__":
    from core.contracts.cascade.dependability import CONTRACT

    run_stage(CONTRACT, main)
