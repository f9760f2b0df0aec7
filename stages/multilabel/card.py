"""The model card of a tagger (promote writes it for bundles whose `task` is `multilabel`): its tags and their
thresholds, mAP and each tag's AP, robustness per corruption, calibration, and where it is known to fail."""

from __future__ import annotations

from typing import Any

from runtime.bundle import Preprocessing
from vision.dependability.tag_robustness import worst_tag_drop


# Seven parameters, as stages.promote.model_card's: the figures of each stage that measured the tagger.
def tagger_card(project: str, digest: str, preprocess: Preprocessing, evaluation: dict[str, Any],
                export: dict[str, Any], dependability: dict[str, Any], verdict: dict[str, Any]) -> str:
    ood, robust, cal = dependability["ood"], dependability["robustness"], dependability["calibration"]
    per_tag: dict[str, dict[str, Any]] = dependability["per_tag"]
    thresholds = dict(zip(preprocess.classes, preprocess.thresholds or (), strict=False))
    tag_drop = worst_tag_drop(robust)
    ap = {tag: "n/a" if row["ap"] is None else f"{row['ap']:.3f}" for tag, row in per_tag.items()}
    lines = [
        "<!-- Written by the promote stage (autodl); do not edit: `dvc repro` rewrites it. -->",
        f"# Model card: {project} (multi-label tagger)",
        "",
        f"- **Artifact**: `{preprocess.variant}` ({preprocess.precision}, target {preprocess.target}), "
        f"bundle digest `sha256:{digest}`",
        f"- **Tags** ({len(preprocess.classes)}): {', '.join(preprocess.classes)}; any number per image, none "
        "included. Input "
        f"{preprocess.input_size_px} px RGB, normalised with mean {preprocess.mean} and std {preprocess.std}",
        "- **Answer**: every tag whose calibrated probability reaches its threshold (chosen per tag on the "
        "validation split by F1 and shipped in the bundle), with each tag's probability",
        f"- **Gate**: {'passed' if verdict['passed'] else 'FAILED'}, {len(verdict['checks'])} checks",
        "",
        "## Tagging quality (test split)",
        "",
        f"- Trained model: mAP over tags {evaluation['map']:.4f}, macro-F1 {evaluation['macro_f1']:.4f} on "
        f"{evaluation['images']} images",
        f"- Deployable model: mAP {dependability['map']:.4f}, macro-F1 {dependability['macro_f1']:.4f}; "
        f"{export['params']:,} parameters, {export['macs']:,} MACs, {export['latency_ms_1_thread']:.3f} ms per "
        f"image on one CPU thread ({export['speedup_vs_torch_fp32']:.1f}x faster than the trained model in torch)",
        "",
        "| tag | AP | F1 | precision | recall | threshold | test images |",
        "|---|---:|---:|---:|---:|---:|---:|",
        *(f"| {tag} | {ap[tag]} | {row['f1']:.3f} | {row['precision']:.3f} | {row['recall']:.3f} | "
          f"{thresholds.get(tag, row['threshold']):.3f} | {row['support']} |" for tag, row in sorted(per_tag.items())),
        "",
        "## Dependability",
        "",
        "| corruption | mean mAP | drop | seen in training |",
        "|---|---:|---:|---|",
        *(f"| {name} | {family['mean_map']:.4f} | {family['drop']:.4f} | "
          f"{'yes' if family['seen_in_training'] else 'no'} |" for name, family in sorted(robust["families"].items())),
        "",
        *([f"- Largest drop of one tag: '{tag_drop[0]}' under {tag_drop[1]}, AP -{tag_drop[2]:.4f} (the table "
           "above averages over tags)"] if tag_drop else []),
        f"- Out of distribution: `{ood['detector']}`, far-OOD AUROC {ood['far_auroc']:.4f}, "
        f"{ood['far_accepted_fraction']:.3f} of the worst far set accepted at the serving threshold",
        f"- Tag probabilities: ECE {cal['ece_before']:.4f} -> {cal['ece_after']:.4f} with one temperature "
        f"{cal['temperature']:.3f} over every tag (the server reports calibrated probabilities)",
        "",
        "## Limitations",
        "",
        f"- The server abstains on about {100 * (1 - ood['tpr']):.0f}% of in-distribution images by design "
        "(the OOD threshold accepts 95% of validation images).",
        (f"- Corruptions never seen in training ({', '.join(robust['held_out'])}): mean mAP "
         f"{robust['held_out_mean_map']:.4f}." if robust["held_out"] else "- Every checked corruption was also a "
         "training augmentation: robustness to unplanned conditions is not measured."),
        "- A tag's threshold was chosen on the validation split; a tag with few validation images has a noisy one.",
        "- No visual explanation is drawn for taggers.",
        "- Latency was measured on the machine that ran the export stage; serving hardware may differ.",
    ]
    return "\n".join(lines) + "\n"
