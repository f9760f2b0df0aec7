"""evaluate (cascade): the released detector and classifier, joined, on the detector's test images.

The detector's boxes are cropped with the cascade's padding (the classifier's crops source's) and named by the
classifier, through runtime.cascade (the function the server answers with). The end-to-end figures are COCO mAP
over the fine classes; beside them the detector's own mAP on its coarse classes (where the pair loses boxes) and,
with a baseline, the single-stage detector of the fine classes on the same images (the comparison a cascade has
to win). Both models run with abstention off: the figures describe the models, not the serving threshold.

The cascade's settings (its projects, classes, padding and both models' digests) go to `cascade.json`, the file
that joins the two bundles in the release; every test image's answer goes to `answers.json`.
"""

from __future__ import annotations

import json
from typing import Any

from core.content import tree_digest
from core.fsutil import atomic_directory, write_csv, write_json
from runtime.artifact import Artifact
from stages.runtime import StageContext, StageFailure, run_stage
from vision.cascade.evaluation import (
    SplitMismatch,
    answers_table,
    baseline_agrees,
    coarse_detections,
    figures,
    fine_detections,
    held_out_images,
    renamed,
    run_cascade,
    run_detector,
)


def main(ctx: StageContext) -> None:
    classes: list[str] = list(ctx.spec("classes"))
    section = ctx.spec("cascade")
    detector = Artifact.load([ctx.input("detector")], abstain_on_ood=False)
    classifier = Artifact.load([ctx.input("classifier")], abstain_on_ood=False)
    if sorted(classifier.classes) != sorted(classes):
        raise StageFailure(f"the classifier's release names {classifier.classes}, not the cascade's classes {classes}: "
                           "run `autodl compile` and `dvc repro`")
    try:
        images = held_out_images(ctx.input("images"), ctx.input("split"), classes, detector.classes)
    except ValueError as exc:
        raise StageFailure(str(exc)) from None
    if not images:
        raise StageFailure(f"{section.detector} has no test images: the cascade has nothing to be measured on")
    answers = run_cascade(detector, classifier, ctx.input("images"), images, section.padding)
    end_to_end = figures(fine_detections(answers, classes), images, classes)
    coarse = figures(coarse_detections(answers, detector.classes), images, detector.classes, truth="coarse")
    metrics: dict[str, Any] = {**{key: end_to_end[key] for key in ("map", "map50", "map75")},
                               "detector_map": coarse["map"], "detector_map50": coarse["map50"],
                               "test_images": len(images), "test_boxes": sum(len(i.boxes) for i in images),
                               "found_boxes": sum(len(a.boxes) for a in answers)}
    baseline_ap: dict[str, float] = {}
    if section.baseline is not None:
        baseline = Artifact.load([ctx.input("baseline")], abstain_on_ood=False)
        try:
            baseline_agrees(images, ctx.input("baseline_split"))
        except SplitMismatch as exc:
            raise StageFailure(str(exc)) from None
        single = figures(renamed(run_detector(baseline, ctx.input("images"), images), baseline.classes, classes),
                         images, classes)
        metrics.update({"baseline_map": single["map"], "baseline_map50": single["map50"],
                        "baseline_map75": single["map75"]})
        baseline_ap = single["per_class_ap"]
    metrics["per_class_ap"] = end_to_end["per_class_ap"]
    settings = {"detector": section.detector, "classifier": section.classifier, "classes": classes,
                "padding": section.padding, "detector_digest": f"sha256:{tree_digest(ctx.input('detector'))}",
                "classifier_digest": f"sha256:{tree_digest(ctx.input('classifier'))}"}
    with atomic_directory(ctx.output("settings")) as out:
        (out / ctx.inside("settings_file")).write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")
    with atomic_directory(ctx.output("answers")) as out:
        (out / ctx.inside("answers_file")).write_text(json.dumps(answers_table(images, answers), indent=1) + "\n",
                                                      encoding="utf-8")
    write_json(ctx.output("metrics"), metrics)
    write_csv(ctx.output("per_class"), [
        {"class": name, "cascade_ap": end_to_end["per_class_ap"].get(name, -1.0),
         **({"baseline_ap": baseline_ap.get(name, -1.0)} if section.baseline is not None else {})}
        for name in classes])
    beside = (f"; baseline {section.baseline}: mAP50-95 {metrics['baseline_map']:.4f}, mAP50 "
              f"{metrics['baseline_map50']:.4f}" if section.baseline is not None else "")
    print(f"evaluate: cascade mAP50-95 {metrics['map']:.4f}, mAP50 {metrics['map50']:.4f} over {len(classes)} fine "
          f"classes (detector alone: mAP50-95 {metrics['detector_map']:.4f} on its classes){beside} "
          f"({len(images)} images, {metrics['test_boxes']} boxes)")


if __name__ == "__main__":
    from core.contracts.cascade.evaluate import CONTRACT

    run_stage(CONTRACT, main)
