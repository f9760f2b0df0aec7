"""evaluate (detection): measure the trained detector on the test split.

COCO figures from torchmetrics (faster_coco_eval backend): mAP50-95, mAP50, mAP75, mAP for small, medium
and large boxes, AR100 and AP per class, written as DVC metrics so `dvc metrics diff` shows them in a pull
request. Precision-recall curves per class (IoU 0.5) and the confusion of detections with truth (IoU 0.5,
at detection.confidence_threshold, with a background row and column) are DVC plots; per-class precision and
recall at that threshold go to per_class.json, and the images with the most mistakes to a gallery.
"""

from __future__ import annotations

from core.fsutil import write_csv, write_json
from stages.runtime import StageContext, run_stage
from vision.detection.data import load_detection_split
from vision.detection.evaluation import (
    confusion_rows,
    match_image,
    per_class_rates,
    precision_recall_rows,
    worst_images,
)
from vision.detection.metrics import mean_average_precision
from vision.detection.predict import predict_split
from vision.detection.reports import worst_gallery
from vision.detection.store import load_detector

GALLERY_IMAGES = 8


def main(ctx: StageContext) -> None:
    classes: list[str] = list(ctx.spec("classes"))
    confidence: float = ctx.spec("detection.confidence_threshold")
    model, decoding = load_detector(ctx.input("model"))
    test = load_detection_split(ctx.input("images"), ctx.input("boxes"), ctx.input("split"), "test", classes)
    found = predict_split(model, test, decoding)
    figures = mean_average_precision(found, test.boxes, test.labels, classes, decoding.max_detections)
    matches = [match_image(f, b, lab, confidence)
               for f, b, lab in zip(found, test.boxes, test.labels, strict=True)]
    rates = per_class_rates(matches, classes)
    per_class = {name: {"ap": figures["per_class_ap"].get(name, -1.0), **rates[name]} for name in classes}
    write_json(ctx.output("metrics"), {**figures, "test_images": len(test), "test_boxes": test.instances(),
                                       "confidence_threshold": confidence})
    write_json(ctx.output("per_class"), per_class)
    write_csv(ctx.output("precision_recall"), precision_recall_rows(found, test.boxes, test.labels, classes))
    write_csv(ctx.output("confusion"), confusion_rows(matches, classes), ("actual", "predicted"))
    worst = worst_images(matches, GALLERY_IMAGES)
    worst_gallery(test, found, worst, classes, confidence, ctx.output("worst"),
                  f"{ctx.project}: the {len(worst)} test images with the most mistakes at confidence "
                  f"{confidence:g} (green: truth, red: detections)")
    print(f"evaluate: test mAP50-95 {figures['map']:.4f}, mAP50 {figures['map50']:.4f}, mAP75 {figures['map75']:.4f}, "
          f"AR100 {figures['ar100']:.4f} ({len(test)} images, {test.instances()} boxes)")


if __name__ == "__main__":
    from core.contracts.detection.evaluate import CONTRACT

    run_stage(CONTRACT, main)
