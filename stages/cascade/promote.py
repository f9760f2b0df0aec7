"""promote (cascade): on a passing gate, one release holding both models and what joins them.

`models/<p>/release/` holds `detector/` and `classifier/` (each its own project's release, unchanged) and
`cascade.json` (the projects, classes, crop padding and both digests): one content address serves, judges and
rolls back the pair, so neither model can ship without the other it was judged with. The copy is refused unless
its bytes are exactly what the cascade's gate judged. The record in `k8s/<p>/promoted.yaml` names the release and
both models' digests; `autodl compile` renders `k8s/<p>/` from it; the model card gives the end-to-end figures.
"""

from __future__ import annotations

from typing import Any

from core.content import tree_digest
from core.fsutil import atomic_directory, read_json, write_text_atomically
from core.html_page import markdown_page
from runtime.cascade import SETTINGS_FILE
from stages.cascade.gate import release_members
from stages.promoting import copy_exactly, passing_verdict, promotion_record, render_manifests
from stages.runtime import StageContext, run_stage


def cascade_card(project: str, digest: str, settings: dict[str, Any], evaluation: dict[str, Any],
                 figures: dict[str, Any], verdict: dict[str, Any]) -> str:
    """What the pair is and how good it is end to end, beside the single-stage baseline when one was measured."""
    baseline = "baseline_map" in evaluation
    lines = [
        "<!-- Written by the promote stage (autodl); do not edit: `dvc repro` rewrites it. -->",
        f"# Model card: {project} (detect, then classify)",
        "",
        f"- **Release**: bundle digest `sha256:{digest}`: the detector `{settings['detector']}` "
        f"(`{settings['detector_digest']}`) and the classifier `{settings['classifier']}` "
        f"(`{settings['classifier_digest']}`), served together",
        f"- **Classes** ({len(settings['classes'])}): {', '.join(settings['classes'])}; each detected box is cropped "
        f"with {settings['padding']:g} of its size added on every side and named by the classifier",
        f"- **Gate**: {'passed' if verdict['passed'] else 'FAILED'}, {len(verdict['checks'])} checks, both models' "
        "own gates passed",
        "",
        "## End to end (the detector's test images)",
        "",
        "| model | mAP50-95 | mAP50 | mAP75 |",
        "|---|---:|---:|---:|",
        f"| cascade | {evaluation['map']:.4f} | {evaluation['map50']:.4f} | {evaluation['map75']:.4f} |",
        *([f"| single-stage baseline | {evaluation['baseline_map']:.4f} | {evaluation['baseline_map50']:.4f} | "
           f"{evaluation['baseline_map75']:.4f} |"] if baseline else []),
        "",
        f"The detector alone finds its own classes at mAP50-95 {evaluation['detector_map']:.4f} (mAP50 "
        f"{evaluation['detector_map50']:.4f}); what the cascade loses beyond that, the classifier loses.",
        "",
        "AP50-95 per class: " + ", ".join(f"{name} {value:.3f}" for name, value in
                                          sorted(evaluation["per_class_ap"].items())),
        "",
        "## Dependability (end to end)",
        "",
        "| corruption of the whole image | mean mAP50-95 | drop |",
        "|---|---:|---:|",
        *(f"| {name} | {family['mean_map']:.4f} | {family['drop']:.4f} |"
          for name, family in sorted(figures["robustness"]["families"].items())),
        "",
        "Far images the served pair still answers with a named box: " + ", ".join(
            f"{name} {ood['answered_fraction']:.3f}" for name, ood in sorted(figures["ood"]["sets"].items()))
        + f" (test images: {figures['ood']['test_answered_fraction']:.3f}). Combined score (detector x classifier) "
        f"D-ECE {figures['calibration']['dece']:.4f} over {figures['calibration']['detections']} detections.",
        "",
        "## Limitations",
        "",
        "- mAP figures are measured with abstention off; served, an image the detector finds out of distribution gets "
        "no boxes and a crop the classifier finds out of distribution gets no fine class.",
        "- Each model's own model card gives its own robustness, calibration and OOD figures.",
    ]
    return "\n".join(lines) + "\n"


def main(ctx: StageContext) -> None:
    verdict, judged = passing_verdict(ctx)
    settings_file = ctx.input("settings") / SETTINGS_FILE
    members = release_members(ctx.input("detector"), ctx.input("classifier"), settings_file)
    with atomic_directory(ctx.output("release")) as out:
        copy_exactly(members, out, judged)
        digest = tree_digest(out)
    settings = read_json(settings_file)
    record = ctx.output("record")
    write_text_atomically(record, promotion_record(
        ctx.project, ctx.spec("serving.storage_uri"), digest, f"cascade {settings['detector']} + "
        f"{settings['classifier']}", f"detector: {settings['detector_digest']}\n"
                                     f"classifier: {settings['classifier_digest']}\n"))
    rendered = render_manifests(ctx.root, ctx.project)
    card = cascade_card(ctx.project, digest, settings, read_json(ctx.input("evaluation")),
                        read_json(ctx.input("figures")), verdict)
    write_text_atomically(ctx.output("model_card"), card)
    write_text_atomically(ctx.output("model_card_html"),
                          markdown_page(card, f"Model card: {ctx.project}", "the promote stage (autodl)"))
    print(f"promote: cascade {ctx.project} sha256:{digest[:12]} ({settings['detector']} "
          f"{settings['detector_digest'][7:19]} + {settings['classifier']} {settings['classifier_digest'][7:19]}) "
          f"recorded in {record}; {rendered}")


if __name__ == "__main__":
    from core.contracts.cascade.promote import CONTRACT

    run_stage(CONTRACT, main)
