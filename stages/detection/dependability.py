"""dependability (detection): how the deployable detector behaves where the test split does not look, all
measured on the file that serves (`models/<p>/export/model.onnx` through ONNX Runtime).

- robustness: test mAP50-95 and mAP50 under each corruption family and severity, boxes unchanged (the
  corruptions move no pixel); families never seen in training reported apart;
- out of distribution: an image-level score from the pooled backbone features (Mahalanobis, KNN) on far sets
  (photographs, textures, noise, the spec's ood_sources) and a near set (test images with shuffled patches); serving
  abstains above the threshold that accepts 95% of validation images;
- calibration: detection ECE (D-ECE) of the box confidences before and after a temperature fitted on the
  validation split, with its reliability diagram;
- explanation: EigenCAM over the feature pyramid of the same candidate in torch (gradient-free), on a gallery of
  test images with their true and predicted boxes.
The temperature and the OOD detector's state are saved for serving; the gate judges the figures.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from core.fsutil import read_json
from core.progress import Progress
from runtime.bundle import MODEL_FILE, PREPROCESS_FILE, Preprocessing
from runtime.detections import Decoding
from stages import assessing
from stages.assessing import Plan
from stages.runtime import StageContext, StageFailure, run_stage
from vision.data.dataset import to_tensor
from vision.data.streams import materialise
from vision.dependability.ood_assessment import OodAssessment, Populations, assess_detectors
from vision.dependability.robustness import CorruptionResult, figure_robustness
from vision.detection.calibration import calibrate, choose_temperature, detection_ece, reliability_bins, scored
from vision.detection.data import DetectionSplit, letterbox, load_detection_split, read_rgb
from vision.detection.dependability import (
    GEOMETRIC,
    corruption_sweep,
    eigencam_gallery,
    eigencam_maps,
    far_and_near_sets,
)
from vision.detection.metrics import mean_average_precision
from vision.detection.onnx import letterboxed, run_images, run_split, session
from vision.detection.ood import image_detectors
from vision.detection.store import load_detector

OOD_SET_IMAGES = 64


def decoding_of(preprocess: Preprocessing) -> Decoding:
    settings = preprocess.detection or {}
    return Decoding.from_dict(settings, tuple(settings["input_wh"]), tuple(settings["strides"]))


def assess_ood(ctx: StageContext, sess: ort.InferenceSession, splits: dict[str, DetectionSplit],
               features: dict[str, np.ndarray], decoding: Decoding, seed: int) -> tuple[OodAssessment, list[str]]:
    """Every image-level OOD detector on the far and near sets (and the spec's folders), thresholded on
    validation; `auto` chooses on validation-only selection sets. Also the spec's OOD files that were unreadable."""
    def first_images(split: DetectionSplit) -> np.ndarray:
        chosen = split.take(range(min(OOD_SET_IMAGES, len(split))))
        return np.concatenate([batch for batch, _ in letterboxed(chosen, decoding.input_wh)])

    # a data set synthesized on the built-in photographs holds them, often without any object: not far from it
    photos = ctx.spec("data.synthesize") is None
    sets = far_and_near_sets(first_images(splits["test"]), decoding.input_wh, seed, OOD_SET_IMAGES, photos)
    extra, unreadable = assessing.extra_ood_sets(ctx, max(decoding.input_wh),
                                                 lambda path, _: letterbox(read_rgb(path), decoding.input_wh)[0])
    sets.update({name: ("far", materialise(images)) for name, images in extra.items()})
    chosen = ctx.spec("dependability.ood.detector")
    selection = {f"selection_{name}": value for name, value in far_and_near_sets(  # validation read for auto only
        first_images(splits["val"]), decoding.input_wh, seed + 100, OOD_SET_IMAGES, photos).items()} \
        if chosen == "auto" else {}

    def featured(given: dict[str, tuple[str, np.ndarray]]) -> dict[str, np.ndarray]:
        return {name: run_images(sess, images, decoding).features for name, (_, images) in given.items()}

    seen = Populations(features["val"], features["test"], featured(sets),
                       {name: kind for name, (kind, _) in {**sets, **selection}.items()}, featured(selection))
    return assess_detectors(image_detectors(features["train"]), seen, chosen), unreadable


# Ten parameters: the candidate, the file, the images and the gallery's settings, each from another input.
def explain_gallery(candidate_dir: Path, candidate: str, sess: ort.InferenceSession, test: DetectionSplit,
                    decoding: Decoding, classes: list[str], confidence: float, count: int, path: Path,
                    title: str) -> int:
    """EigenCAM of the torch form of the deployable candidate on the first `count` test images."""
    chosen = test.take(range(min(count, len(test))))
    if not len(chosen):
        return 0
    model, _ = load_detector(candidate_dir, candidate)
    images = np.concatenate([b for b, _ in letterboxed(chosen, decoding.input_wh)])
    fits = [letterbox(read_rgb(chosen.root / p), decoding.input_wh)[1] for p in chosen.paths]
    maps = eigencam_maps(model, to_tensor(images))
    found = run_images(sess, images, decoding).found
    truth = [(fit.to_input(boxes), labels)
             for fit, boxes, labels in zip(fits, chosen.boxes, chosen.labels, strict=True)]
    eigencam_gallery(images, maps, truth, found, classes, confidence, path, title)
    return len(chosen)


# Over 40 lines: the stage reads its inputs, measures each figure with a library call and names them for the shared
# writer; splitting it would only pass the same dozen values around.
def main(ctx: StageContext) -> None:
    seed: int = ctx.spec("seed")
    torch.manual_seed(seed)
    plan = Plan.from_spec(ctx, explains=True)
    export_dir = ctx.input("deployable")
    preprocess = Preprocessing.from_dict(read_json(export_dir / PREPROCESS_FILE))
    classes, decoding = list(preprocess.classes), decoding_of(preprocess)
    confidence = float((preprocess.detection or {})["confidence_threshold"])
    if set(plan.corruptions) & set(GEOMETRIC):
        raise StageFailure(f"dependability.robustness.corruptions: {sorted(set(plan.corruptions) & set(GEOMETRIC))} "
                           "move pixels, so a detector's boxes would move with them")
    images, boxes, split = ctx.input("images"), ctx.input("boxes"), ctx.input("split")
    splits = {name: load_detection_split(images, boxes, split, name, classes) for name in ("train", "val", "test")}
    sess = session(export_dir / MODEL_FILE)
    with Progress("dependability", 3, unit="split") as shown:
        outputs = {}
        for name, data in splits.items():
            outputs[name] = run_split(sess, data, decoding)
            shown.update(1, f"{name} split run")
    test = splits["test"]
    clean = mean_average_precision(outputs["test"].found, test.boxes, test.labels, classes, decoding.max_detections)
    clean_map, clean_map50 = max(clean["map"], 0.0), max(clean["map50"], 0.0)
    ood, unreadable = assess_ood(ctx, sess, splits, {n: o.features for n, o in outputs.items()}, decoding, seed)
    with Progress("dependability: corruptions", len(plan.corruptions) * len(plan.severities),
                  unit="condition") as shown:
        sweep = corruption_sweep(
            sess, test, decoding, classes, plan.corruptions, plan.severities, plan.trained_on, seed,
            lambda row: shown.update(1, f"{row.corruption} s{row.severity} mAP {row.map:.3f}"))
    conditions = [CorruptionResult(r.corruption, r.severity, r.map, r.seen_in_training) for r in sweep]
    temperature = choose_temperature(scored(outputs["val"].found, splits["val"].boxes, splits["val"].labels))
    measured = scored(outputs["test"].found, test.boxes, test.labels)
    after = calibrate(measured.confidences, temperature)
    explained = explain_gallery(ctx.input("candidates"), preprocess.variant.rsplit("-", 1)[0], sess, test, decoding,
                                classes, confidence, plan.gradcam_samples, ctx.output("gradcam_png"),
                                f"{ctx.project}: EigenCAM on the deployable candidate (green: truth, red: detections)")
    assessing.write_assessment(ctx, assessing.Assessment(
        head={"task": "detection", "variant": preprocess.variant, "map": round(clean_map, 6),
              "map50": round(clean_map50, 6), "map75": clean["map75"], "per_class_ap": clean["per_class_ap"],
              "test_images": len(test)},
        ood=ood, unreadable=unreadable,
        robustness=assessing.Robustness(
            clean_map, conditions, figure_robustness(clean_map, conditions, "map"),
            [{"condition": f"{r.corruption} s{r.severity}", "map": r.map, "map50": r.map50,
              "seen_in_training": r.seen_in_training} for r in sweep]
            + [{"condition": "clean", "map": round(clean_map, 6), "map50": round(clean_map50, 6),
                "seen_in_training": True}],
            "test mAP50-95 under corruptions (deployable model)", "mAP50-95"),
        calibration=assessing.Calibration(
            temperature, "dece", "D-ECE", round(detection_ece(measured.confidences, measured.correct), 6),
            round(detection_ece(after, measured.correct), 6), reliability_bins(measured.confidences, measured.correct),
            reliability_bins(after, measured.correct), "precision", "detections",
            "box confidence reliability (test split, D-ECE)", {"detections": len(after)}),
        explain={"method": "eigencam", "samples": explained}, figure="map",
        notes=f"EigenCAM on {explained} images"))


if __name__ == "__main__":
    from core.contracts.detection.dependability import CONTRACT

    run_stage(CONTRACT, main)
