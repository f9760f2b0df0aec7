"""COCO mAP through torchmetrics' MeanAveragePrecision with the faster_coco_eval backend (pinned in
pyproject.toml; pycocotools' backend reports map=-1 in cases faster_coco_eval gets right,
Lightning-AI/torchmetrics#2560)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torchmetrics.detection import MeanAveragePrecision

from runtime.detections import Detections
from vision.compression.scoring import Scoring

SUMMARY = {"map": "map", "map_50": "map50", "map_75": "map75", "map_small": "map_small",
           "map_medium": "map_medium", "map_large": "map_large", "mar_100": "ar100"}
"""torchmetrics' key -> the name written as a DVC metric. COCO's size bands: small < 32^2 px, large > 96^2."""


def map_metric(class_metrics: bool = False, max_detections: int = 100) -> MeanAveragePrecision:
    """COCO's evaluation; mAP counts up to `max_detections` per image (COCO's 100 unless a detector keeps more:
    a large aerial image holds hundreds of objects, and a cap of 100 would cap recall with it)."""
    thresholds = [1, 10, 100] if max_detections <= 100 else [1, 100, max_detections]
    return MeanAveragePrecision(box_format="xyxy", iou_type="bbox", backend="faster_coco_eval",
                                class_metrics=class_metrics, max_detection_thresholds=thresholds)


def as_prediction(found: Detections) -> dict[str, torch.Tensor]:
    return {"boxes": torch.from_numpy(np.ascontiguousarray(found.boxes, dtype=np.float32)).reshape(-1, 4),
            "scores": torch.from_numpy(np.ascontiguousarray(found.scores, dtype=np.float32)),
            "labels": torch.from_numpy(np.ascontiguousarray(found.labels, dtype=np.int64))}


def as_target(boxes: np.ndarray, labels: np.ndarray) -> dict[str, torch.Tensor]:
    return {"boxes": torch.from_numpy(np.ascontiguousarray(boxes, dtype=np.float32)).reshape(-1, 4),
            "labels": torch.from_numpy(np.ascontiguousarray(labels, dtype=np.int64))}


def mean_average_precision(found: Sequence[Detections], truth_boxes: Sequence[np.ndarray],
                           truth_labels: Sequence[np.ndarray], classes: Sequence[str],
                           max_detections: int = 100) -> dict[str, Any]:
    """COCO figures over the images (-1 where COCO has nothing to measure, e.g. no large boxes), and AP50-95 and
    AP50... per class name."""
    metric = map_metric(class_metrics=True, max_detections=max_detections)
    metric.update([as_prediction(f) for f in found],
                  [as_target(b, lab) for b, lab in zip(truth_boxes, truth_labels, strict=True)])
    raw = metric.compute()
    figures: dict[str, Any] = {name: round(float(raw[key]), 6) for key, name in SUMMARY.items()}
    per_class_ap = raw["map_per_class"].reshape(-1).tolist()
    measured = [int(c) for c in raw["classes"].reshape(-1).tolist()]
    figures["per_class_ap"] = {classes[c]: round(float(ap), 6) for c, ap in zip(measured, per_class_ap, strict=True)}
    return figures

SCORING = Scoring("val_map", "val mAP50-95", "validation mAP50-95", ("val_map", "val_map50", "test_map", "test_map50"),
                  ("val mAP", "val mAP50", "test mAP", "test mAP50"), latency_note=" with decoding and NMS",
                  per_megapixel=True)
"""A detector's pruning rounds and exported variants are scored by COCO mAP; compress.budget.max_accuracy_drop is
read on validation mAP50-95."""
