"""What the evaluate stage measures of a detector beyond the COCO summary: precision-recall curves per class
(COCO's own 101-point interpolation, from torchmetrics' extended summary), the confusion of detections with
truth at IoU 0.5 including a background row and column, per-class precision and recall at the operating
threshold, and a ranking of the images with the most mistakes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from runtime.detections import Detections, iou_matrix
from vision.detection.metrics import as_prediction, as_target, map_metric

BACKGROUND = "background"
MATCH_IOU = 0.5


def precision_recall_rows(found: Sequence[Detections], boxes: Sequence[np.ndarray], labels: Sequence[np.ndarray],
                          classes: Sequence[str]) -> list[dict[str, float]]:
    """One row per recall level (0, 0.01, ... 1) with each class's interpolated precision at IoU 0.5 over all
    box sizes (COCO's PR curve; 0 past the class's highest recall)."""
    metric = map_metric(class_metrics=True)
    metric.extended_summary = True
    metric.update([as_prediction(f) for f in found], [as_target(b, lab) for b, lab in zip(boxes, labels, strict=True)])
    raw = metric.compute()
    precision = raw["precision"][0, :, :, 0, -1].numpy()  # IoU 0.5, every recall, every class, all areas, 100 dets
    measured = [int(c) for c in raw["classes"].reshape(-1).tolist()]
    rows = []
    for step in range(precision.shape[0]):
        row: dict[str, float] = {"recall": round(step / (precision.shape[0] - 1), 2)}
        for column, c in enumerate(measured):
            row[f"precision_{classes[c]}"] = round(max(float(precision[step, column]), 0.0), 6)
        rows.append(row)
    return rows


@dataclass(frozen=True)
class ImageMatch:
    """One image's detections above the threshold matched to its truth at IoU >= MATCH_IOU, whatever the class
    (greedy, highest IoU first): matched pairs, missed truths, unmatched detections."""

    pairs: list[tuple[int, int]]
    """(true class, predicted class) of each matched pair."""
    missed: list[int]
    extra: list[int]

    @property
    def mistakes(self) -> int:
        return sum(t != p for t, p in self.pairs) + len(self.missed) + len(self.extra)


def match_image(found: Detections, boxes: np.ndarray, labels: np.ndarray, threshold: float) -> ImageMatch:
    keep = found.scores >= threshold
    predicted, predicted_labels = found.boxes[keep], found.labels[keep]
    overlaps = iou_matrix(boxes, predicted) if len(boxes) and len(predicted) else np.zeros((len(boxes),
                                                                                           len(predicted)))
    pairs, used_truth, used_found = [], set(), set()
    for t, p in zip(*np.unravel_index(np.argsort(-overlaps, axis=None, kind="stable"), overlaps.shape), strict=True):
        if overlaps[t, p] < MATCH_IOU:
            break
        if t in used_truth or p in used_found:
            continue
        used_truth.add(t)
        used_found.add(p)
        pairs.append((int(labels[t]), int(predicted_labels[p])))
    return ImageMatch(pairs, [int(labels[t]) for t in range(len(boxes)) if t not in used_truth],
                      [int(predicted_labels[p]) for p in range(len(predicted)) if p not in used_found])


def confusion_rows(matches: Sequence[ImageMatch], classes: Sequence[str]) -> list[dict[str, str]]:
    """One (actual, predicted) row per matched pair, missed box (predicted background) and unmatched detection
    (actual background): the input of DVC's confusion template."""
    rows = [{"actual": classes[t], "predicted": classes[p]} for m in matches for t, p in m.pairs]
    rows += [{"actual": classes[t], "predicted": BACKGROUND} for m in matches for t in m.missed]
    rows += [{"actual": BACKGROUND, "predicted": classes[p]} for m in matches for p in m.extra]
    return rows


def per_class_rates(matches: Sequence[ImageMatch], classes: Sequence[str]) -> dict[str, dict[str, float | int]]:
    """Per class at the operating threshold: boxes, detections, precision and recall (correct class at IoU 0.5)."""
    out: dict[str, dict[str, float | int]] = {}
    for c, name in enumerate(classes):
        hits = sum(1 for m in matches for t, p in m.pairs if t == c and p == c)
        truths = sum(1 for m in matches for t, _ in m.pairs if t == c) + sum(m.missed.count(c) for m in matches)
        detections = sum(1 for m in matches for _, p in m.pairs if p == c) + sum(m.extra.count(c) for m in matches)
        out[name] = {"boxes": truths, "detections": detections,
                     "precision": round(hits / detections, 6) if detections else 0.0,
                     "recall": round(hits / truths, 6) if truths else 0.0}
    return out


def worst_images(matches: Sequence[ImageMatch], count: int) -> list[int]:
    """Indices of the images with the most mistakes (ties: data order), at most `count`, none without mistakes."""
    order = sorted(range(len(matches)), key=lambda i: (-matches[i].mistakes, i))
    return [i for i in order[:count] if matches[i].mistakes]
