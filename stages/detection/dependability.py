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

from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import torch

from core.fsutil import atomic_directory, read_json, write_csv, write_json
from core.progress import Progress
from core.spec.training import AugmentSection
from runtime.bundle import (
    MODEL_FILE,
    PREPROCESS_FILE,
    Preprocessing,
)
from runtime.detections import Decoding
from stages.runtime import StageContext, StageFailure, run_stage
from vision.data.dataset import to_tensor
from vision.dependability.figures import ood_histogram, reliability_diagram, robustness_heatmap
from vision.dependability.robustness import CorruptionResult, figure_robustness
from vision.dependability.serving_state import write_serving_state
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
from vision.detection.ood import ImageOod, assess_image_ood, summary
from vision.detection.store import load_detector
from vision.training.augment import enabled

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
OOD_SET_IMAGES = 64


def decoding_of(preprocess: Preprocessing) -> Decoding:
    settings = preprocess.detection or {}
    return Decoding(tuple(settings["input_wh"]), tuple(settings["strides"]), float(settings["score_threshold"]),
                    float(settings["nms_iou"]), int(settings["max_detections"]))


def folder_sets(root: Path, folders: list[str], input_wh: tuple[int, int]) -> dict[str, np.ndarray]:
    """The spec's ood_sources folders, letterboxed (far sets); an empty or missing folder fails the stage."""
    found: dict[str, np.ndarray] = {}
    for folder in folders:
        paths = sorted(p for p in (root / folder).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        images = []
        for path in paths:
            try:
                images.append(letterbox(read_rgb(path), input_wh)[0])
            except (OSError, ValueError):
                continue
        if not images:
            raise StageFailure(f"dependability.ood.ood_sources: folder '{folder}' holds no readable image")
        found[f"source:{folder}"] = np.stack(images)
    return found


def assess_ood(ctx: StageContext, sess: ort.InferenceSession, splits: dict[str, DetectionSplit],
               features: dict[str, np.ndarray], decoding: Decoding, seed: int) -> ImageOod:
    """Every image-level OOD detector on the far and near sets (and the spec's folders), thresholded on
    validation; `auto` chooses on validation-only selection sets."""
    test_images = np.concatenate([b for b, _ in letterboxed(splits["test"].take(range(min(OOD_SET_IMAGES, len(
        splits["test"])))), decoding.input_wh)])
    val_images = np.concatenate([b for b, _ in letterboxed(splits["val"].take(range(min(OOD_SET_IMAGES, len(
        splits["val"])))), decoding.input_wh)])
    # a data set synthesized on the built-in photographs holds them, often without any object: not far from it
    photos = ctx.spec("data.synthesize") is None
    sets = far_and_near_sets(test_images, decoding.input_wh, seed, OOD_SET_IMAGES, photos)
    extra = folder_sets(ctx.root, list(ctx.spec("dependability.ood.ood_sources")), decoding.input_wh)
    sets.update({name: ("far", images) for name, images in extra.items()})
    selection = {f"selection_{name}": value for name, value in
                 far_and_near_sets(val_images, decoding.input_wh, seed + 100, OOD_SET_IMAGES, photos).items()}
    kinds = {name: kind for name, (kind, _) in {**sets, **selection}.items()}

    def featured(images: np.ndarray) -> np.ndarray:
        return run_images(sess, images, decoding).features

    return assess_image_ood(features["train"], features["val"], features["test"],
                            {name: featured(images) for name, (_, images) in sets.items()}, kinds,
                            ctx.spec("dependability.ood.detector"),
                            {name: featured(images) for name, (_, images) in selection.items()})


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


# Over 40 lines: the stage reads its inputs, writes each named output and prints its summary in order; each
# step is a call into the library, and splitting them would only pass the same dozen values around.
def main(ctx: StageContext) -> None:
    seed: int = ctx.spec("seed")
    torch.manual_seed(seed)
    export_dir = ctx.input("deployable")
    preprocess = Preprocessing.from_dict(read_json(export_dir / PREPROCESS_FILE))
    classes, decoding = list(preprocess.classes), decoding_of(preprocess)
    confidence = float((preprocess.detection or {})["confidence_threshold"])
    corruptions = list(ctx.spec("dependability.robustness.corruptions"))
    if set(corruptions) & set(GEOMETRIC):
        raise StageFailure(f"dependability.robustness.corruptions: {sorted(set(corruptions) & set(GEOMETRIC))} move "
                           "pixels, so a detector's boxes would move with them")
    images, boxes, split = ctx.input("images"), ctx.input("boxes"), ctx.input("split")
    splits = {name: load_detection_split(images, boxes, split, name, classes) for name in ("train", "val", "test")}
    sess = session(export_dir / MODEL_FILE)
    with Progress("dependability", 3, unit="split") as shown:
        outputs = {}
        for name, data in splits.items():
            outputs[name] = run_split(sess, data, decoding)
            shown.update(1, f"{name} split run")
    test = splits["test"]
    clean = mean_average_precision(outputs["test"].found, test.boxes, test.labels, classes)
    clean_map, clean_map50 = max(clean["map"], 0.0), max(clean["map50"], 0.0)
    ood = assess_ood(ctx, sess, splits, {n: o.features for n, o in outputs.items()}, decoding, seed)
    augment: AugmentSection = ctx.spec("augment")
    with Progress("dependability: corruptions", len(corruptions) * len(ctx.spec("dependability.robustness.severities")),
                  unit="condition") as shown:
        sweep = corruption_sweep(sess, test, decoding, classes, corruptions,
                                 list(ctx.spec("dependability.robustness.severities")), set(enabled(augment)), seed,
                                 lambda row: shown.update(1, f"{row.corruption} s{row.severity} mAP {row.map:.3f}"))
    conditions = [CorruptionResult(r.corruption, r.severity, r.map, r.seen_in_training) for r in sweep]
    robustness = figure_robustness(clean_map, conditions, "map")
    families: dict[str, dict[str, Any]] = robustness["families"]
    validation = scored(outputs["val"].found, splits["val"].boxes, splits["val"].labels)
    temperature = choose_temperature(validation)
    measured = scored(outputs["test"].found, test.boxes, test.labels)
    after = calibrate(measured.confidences, temperature)
    dece_before = round(detection_ece(measured.confidences, measured.correct), 6)
    dece_after = round(detection_ece(after, measured.correct), 6)
    rows_before = reliability_bins(measured.confidences, measured.correct)
    rows_after = reliability_bins(after, measured.correct)
    explained = explain_gallery(ctx.input("candidates"), preprocess.variant.rsplit("-", 1)[0], sess, test, decoding,
                                classes, confidence, ctx.spec("dependability.explain").gradcam_samples,
                                ctx.output("gradcam_png"), f"{ctx.project}: EigenCAM on the deployable candidate "
                                "(green: truth, red: detections)")
    with atomic_directory(ctx.output("serving_state")) as out:
        write_serving_state(out, temperature, ood.detector, ood.threshold, 0.95, ood.state)
    ood_figures = summary(ood)
    figures = {
        "task": "detection", "variant": preprocess.variant, "map": round(clean_map, 6), "map50": round(clean_map50, 6),
        "map75": clean["map75"], "per_class_ap": clean["per_class_ap"], "test_images": len(test),
        "ood": ood_figures,
        "robustness": robustness,
        "calibration": {"temperature": temperature, "dece_before": dece_before, "dece_after": dece_after,
                        "detections": len(after)},
        "explain": {"method": "eigencam", "samples": explained},
    }
    write_json(ctx.output("metrics"), figures)
    write_json(ctx.output("ood"), {"detector": ood.detector, "tpr": 0.95, "set_kinds": ood.kinds,
                                   "choice": ood.choice.as_dict() if ood.choice else None,
                                   "detectors": {d: {s: asdict(m) for s, m in sets.items()}
                                                 for d, sets in ood.table.items()}})
    robustness_heatmap(clean_map, conditions, ctx.output("robustness_png"),
                       f"{ctx.project}: test mAP50-95 under corruptions (deployable model)", figure_name="mAP50-95")
    reliability_diagram(rows_before, rows_after, temperature, dece_before, dece_after, ctx.output("reliability_png"),
                        f"{ctx.project}: box confidence reliability (test split, D-ECE)", y_label="precision",
                        counted="detections", error_name="D-ECE")
    ood_histogram(ood.scores, ood.kinds, ood.threshold, ood.detector, ctx.output("ood_scores_png"),
                  f"{ctx.project}: {ood.detector} image scores")
    write_csv(ctx.output("robustness"), [{"condition": f"{r.corruption} s{r.severity}", "map": r.map, "map50": r.map50,
                                          "seen_in_training": r.seen_in_training} for r in sweep]
              + [{"condition": "clean", "map": round(clean_map, 6), "map50": round(clean_map50, 6),
                  "seen_in_training": True}])
    write_csv(ctx.output("reliability"), rows_after, ("confidence", "precision", "count"))
    print(f"dependability: {preprocess.variant} test mAP50-95 {clean_map:.4f}, mAP50 {clean_map50:.4f}; {ood.detector} "
          f"far-OOD AUROC {ood_figures['far_auroc']:.4f} (accepted at the serving threshold "
          f"{ood_figures['far_accepted_fraction']:.3f}), near {ood_figures['near_auroc']:.4f}; worst family drop "
          f"{max((f['drop'] for f in families.values()), default=0.0):.4f}; D-ECE {dece_before:.4f} -> "
          f"{dece_after:.4f} at T={temperature:.3f}; EigenCAM on {explained} images")


if __name__ == "__main__":
    from core.contracts.detection.dependability import CONTRACT

    run_stage(CONTRACT, main)
