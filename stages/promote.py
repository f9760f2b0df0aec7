"""promote: the last stage, run only after a passing gate; its git diff is what a merge promotes.

Bundles what the model server needs (model.onnx, preprocess.json, serving.json,
ood_state/) into `models/<p>/release` (a DVC output; `autodl publish` copies it to
the content address after a merge),
names it by the sha256 of its files, records that content address in
`k8s/<p>/promoted.yaml`, re-renders `k8s/<p>/` (the InferenceService now points at
the new digest) and writes the model card (markdown, and HTML that renders offline). A failing gate stops `dvc repro`
before this stage, so `k8s/` stays byte-for-byte unchanged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.content import tree_digest
from core.fsutil import atomic_directory, read_json, write_text_atomically
from core.html_page import markdown_page
from runtime.bundle import PREPROCESS_FILE, IncompleteBundle, Preprocessing, bundle_members
from stages.multilabel.card import tagger_card
from stages.promoting import copy_exactly, passing_verdict, promotion_record, render_manifests
from stages.runtime import StageContext, StageFailure, run_stage


def bundle(sources: dict[str, Path], out: Path, judged: dict[str, str] | None = None) -> None:
    """Copy the server's files from the export and dependability outputs into one folder; with `judged`
    (the gate's sha256 per file), refuse unless the copied bytes are exactly what the gate judged."""
    try:
        members = bundle_members(sources)
    except IncompleteBundle as exc:
        raise StageFailure(str(exc)) from None
    copy_exactly(members, out, judged)


def model_card(project: str, digest: str, preprocess: Preprocessing, evaluation: dict[str, Any],
               export: dict[str, Any], dependability: dict[str, Any], verdict: dict[str, Any]) -> str:
    """What the model is, how good it is, and where it is known to fail, for the people who deploy it: the card
    of the task the bundle declares (`preprocess.json`'s `task`)."""
    writer = MODEL_CARDS.get(preprocess.task)
    if writer is None:
        raise StageFailure(f"no model card for task {preprocess.task!r} (known: {', '.join(sorted(MODEL_CARDS))})")
    return writer(project, digest, preprocess, evaluation, export, dependability, verdict)


def classifier_card(project: str, digest: str, preprocess: Preprocessing, evaluation: dict[str, Any],
                    export: dict[str, Any], dependability: dict[str, Any], verdict: dict[str, Any]) -> str:
    ood, robust, cal = dependability["ood"], dependability["robustness"], dependability["calibration"]
    held_out = robust["held_out"]
    worst = robust["worst"]
    lines = [
        "<!-- Written by the promote stage (autodl); do not edit: `dvc repro` rewrites it. -->",
        f"# Model card: {project}",
        "",
        f"- **Artifact**: `{preprocess.variant}` ({preprocess.precision}, target {preprocess.target}), "
        f"bundle digest `sha256:{digest}`",
        f"- **Classes** ({len(preprocess.classes)}): {', '.join(preprocess.classes)}; input "
        f"{preprocess.input_size_px} px RGB, normalised with mean {preprocess.mean} and std {preprocess.std}",
        f"- **Gate**: {'passed' if verdict['passed'] else 'FAILED'}, {len(verdict['checks'])} checks",
        "",
        "## Performance (test split)",
        "",
        f"- Trained model: accuracy {evaluation['accuracy']:.4f}, macro-F1 {evaluation['macro_f1']:.4f} on "
        f"{evaluation['images']} images",
        f"- Deployable model: accuracy {dependability['accuracy']:.4f}; {export['params']:,} parameters, "
        f"{export['macs']:,} MACs, {export['latency_ms_1_thread']:.3f} ms per image on one CPU thread "
        f"({export['speedup_vs_torch_fp32']:.1f}x faster than the trained model in torch)",
        "",
        "## Dependability",
        "",
        f"- Out of distribution: `{ood['detector']}`, far-OOD AUROC {ood['far_auroc']:.4f}, FPR at 95% TPR "
        f"{ood['far_fpr_at_95_tpr']:.3f}, {ood['far_accepted_fraction']:.3f} of the worst far set accepted at the "
        f"serving threshold; near-OOD AUROC {ood['near_auroc']:.4f}",
        f"- Corruptions: mean corrupted/clean accuracy {robust['mean_ratio']:.3f}" if robust["mean_ratio"] is not None
        else "- Corruptions: none checked",
        f"- Calibration: temperature {cal['temperature']:.3f}, ECE {cal['ece_before']:.4f} -> {cal['ece_after']:.4f}",
        "",
        "## Limitations",
        "",
        f"- The server abstains on about {100 * (1 - ood['tpr']):.0f}% of in-distribution images by design "
        "(the OOD threshold accepts 95% of validation images).",
        (f"- Corruptions never seen in training ({', '.join(held_out)}): mean corrupted/clean accuracy "
         f"{robust['held_out_mean_ratio']:.3f}." if held_out else "- Every checked corruption was also a training "
         "augmentation: robustness to unplanned conditions is not measured."),
        (f"- Worst checked condition: {worst['corruption']} at severity {worst['severity']} "
         f"(accuracy {worst['accuracy']:.3f})." if worst else ""),
        "- Latency was measured on the machine that ran the export stage; serving hardware may differ.",
    ]
    return "\n".join(lines) + "\n"


# Seven parameters, as model_card's: the figures of each stage that measured the detector.
def detector_card(project: str, digest: str, preprocess: Preprocessing, evaluation: dict[str, Any],
                  export: dict[str, Any], dependability: dict[str, Any], verdict: dict[str, Any]) -> str:
    """The model card of a detector: classes, the mAP table, robustness per corruption, limitations."""
    ood, robust, cal = dependability["ood"], dependability["robustness"], dependability["calibration"]
    settings = preprocess.detection or {}
    width, height = settings.get("input_wh", [preprocess.input_size_px] * 2)
    per_class = dependability.get("per_class_ap", {})
    families = robust["families"]
    lines = [
        "<!-- Written by the promote stage (autodl); do not edit: `dvc repro` rewrites it. -->",
        f"# Model card: {project} (object detector)",
        "",
        f"- **Artifact**: `{preprocess.variant}` ({preprocess.precision}, target {preprocess.target}), "
        f"bundle digest `sha256:{digest}`",
        f"- **Classes** ({len(preprocess.classes)}): {', '.join(preprocess.classes)}",
        f"- **Input**: any RGB image, letterboxed into {width} x {height} px (aspect kept, padded); boxes are "
        f"returned as xyxy in the original image's pixels, at most {settings.get('max_detections')} per image, "
        f"NMS IoU {settings.get('nms_iou')}, default confidence threshold {settings.get('confidence_threshold')}",
        f"- **Gate**: {'passed' if verdict['passed'] else 'FAILED'}, {len(verdict['checks'])} checks",
        "",
        "## Detection quality (test split)",
        "",
        "| model | mAP50-95 | mAP50 | mAP75 |",
        "|---|---:|---:|---:|",
        f"| trained (torch) | {evaluation['map']:.4f} | {evaluation['map50']:.4f} | {evaluation['map75']:.4f} |",
        f"| deployable ({preprocess.variant}) | {dependability['map']:.4f} | {dependability['map50']:.4f} | "
        f"{dependability['map75']:.4f} |",
        "",
        "AP50-95 per class: " + ", ".join(f"{name} {value:.3f}" for name, value in sorted(per_class.items())),
        "",
        f"Deployable model: {export['params']:,} parameters, {export['macs']:,} MACs, "
        f"{export['latency_ms_1_thread']:.2f} ms per image on one CPU thread with decoding and NMS "
        f"({export['speedup_vs_torch_fp32']:.1f}x faster than the trained detector in torch).",
        "",
        "## Dependability",
        "",
        "| corruption | mean mAP50-95 | drop | seen in training |",
        "|---|---:|---:|---|",
        *(f"| {name} | {family['mean_map']:.4f} | {family['drop']:.4f} | "
          f"{'yes' if family['seen_in_training'] else 'no'} |" for name, family in sorted(families.items())),
        "",
        f"- Out of distribution (image level, `{ood['detector']}` on pooled backbone features): far AUROC "
        f"{ood['far_auroc']:.4f}, {ood['far_accepted_fraction']:.3f} of the worst far set accepted; near AUROC "
        f"{ood['near_auroc']:.4f}",
        f"- Box confidences: D-ECE {cal['dece_before']:.4f} -> {cal['dece_after']:.4f} with temperature "
        f"{cal['temperature']:.3f} (the server reports calibrated confidences)",
        "",
        "## Limitations",
        "",
        f"- The server abstains on about {100 * (1 - ood['tpr']):.0f}% of in-distribution images by design "
        "(the OOD threshold accepts 95% of validation images); OOD is judged per image, not per box.",
        (f"- Corruptions never seen in training ({', '.join(robust['held_out'])}): mean mAP50-95 "
         f"{robust['held_out_mean_map']:.4f}." if robust["held_out"] else "- Every checked corruption was also a "
         "training augmentation: robustness to unplanned conditions is not measured."),
        "- Geometric corruptions (rotation, perspective, elastic) are not measured: they would move the boxes.",
        "- Latency was measured on the machine that ran the export stage; serving hardware may differ.",
    ]
    return "\n".join(lines) + "\n"


MODEL_CARDS = {"classification": classifier_card, "detection": detector_card, "multilabel": tagger_card}
"""Each task's model card, by the task a bundle declares."""


def main(ctx: StageContext) -> None:
    verdict, judged = passing_verdict(ctx)
    export_dir, dependability_dir = ctx.input("deployable"), ctx.input("serving_state")
    preprocess = Preprocessing.from_dict(read_json(export_dir / PREPROCESS_FILE))
    with atomic_directory(ctx.output("release")) as out:
        bundle({"export": export_dir, "dependability": dependability_dir}, out, judged)
        digest = tree_digest(out)
    record, card = ctx.output("record"), ctx.output("model_card")
    write_text_atomically(record, promotion_record(ctx.project, ctx.spec("serving.storage_uri"), digest,
                                                   preprocess.variant))
    rendered = render_manifests(ctx.root, ctx.project)
    evaluation, export, dependability = (read_json(ctx.input(n)) for n in ("evaluation", "export_summary", "figures"))
    card_text = model_card(ctx.project, digest, preprocess, evaluation, export, dependability, verdict)
    write_text_atomically(card, card_text)
    write_text_atomically(ctx.output("model_card_html"),
                          markdown_page(card_text, f"Model card: {ctx.project}", "the promote stage (autodl)"))
    print(f"promote: {ctx.project} sha256:{digest[:12]} ({preprocess.variant}) recorded in {record}; {rendered}")


if __name__ == "__main__":
    from core.contracts.shared.promote import CONTRACT

    run_stage(CONTRACT, main)
