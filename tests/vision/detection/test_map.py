"""mAP from torchmetrics (faster_coco_eval) on hand-made detections equals the hand computation."""

from __future__ import annotations

import numpy as np
import pytest

from runtime.detections import Detections
from vision.detection.evaluation import confusion_rows, match_image, per_class_rates

CLASSES = ["a", "b"]


def _found(boxes, scores, labels) -> Detections:
    return Detections(np.array(boxes, np.float32).reshape(-1, 4), np.array(scores, np.float32),
                      np.array(labels, np.int64))


def test_map_of_hand_made_detections_equals_the_hand_computation() -> None:
    from vision.detection.metrics import mean_average_precision

    truth_boxes = [np.array([[0, 0, 40, 40], [50, 50, 90, 90]], np.float32)]
    truth_labels = [np.array([0, 0])]
    # class a: the best-scored detection is a false positive, then one exact hit; the second truth is missed.
    # precision/recall points: (0, 0), (0.5, 0.5); COCO's interpolated precision is 0.5 at recall 0..0.5 and 0
    # above, so AP = 51 of 101 recall points at 0.5 = 0.252475 at every IoU threshold (the hit is exact).
    found = [_found([[200, 200, 240, 240], [0, 0, 40, 40]], [0.9, 0.8], [0, 0])]
    figures = mean_average_precision(found, truth_boxes, truth_labels, CLASSES)
    hand = 51 * 0.5 / 101
    assert figures["map"] == pytest.approx(hand, abs=1e-6)
    assert figures["map50"] == pytest.approx(hand, abs=1e-6)
    assert figures["ar100"] == pytest.approx(0.5)
    assert figures["per_class_ap"] == {"a": pytest.approx(hand, abs=1e-6)}


def test_a_box_at_iou_0_625_counts_at_three_of_the_ten_coco_thresholds() -> None:
    from vision.detection.metrics import mean_average_precision

    # 40x40 truth, a 40x25 detection inside it: IoU = 1000/1600 = 0.625 -> a hit at IoU 0.50, 0.55 and 0.60, a
    # miss from 0.65 to 0.95: AP = 1 at 3 of the 10 thresholds. (At IoU exactly 0.6 COCO counts a miss at 0.60:
    # its thresholds come from linspace, and 0.6 there is 0.6000000000000001.)
    figures = mean_average_precision([_found([[0, 0, 40, 25]], [0.9], [1])], [np.array([[0, 0, 40, 40]], np.float32)],
                                     [np.array([1])], CLASSES)
    assert figures["map"] == pytest.approx(0.3)
    assert figures["map50"] == pytest.approx(1.0)
    assert figures["map75"] == pytest.approx(0.0)


def test_confusion_has_background_for_misses_and_false_alarms() -> None:
    truth = np.array([[0, 0, 10, 10], [20, 20, 30, 30], [40, 40, 50, 50]], np.float32)
    labels = np.array([0, 1, 1])
    found = _found([[0, 0, 10, 10], [20, 20, 30, 30], [70, 70, 80, 80], [40, 40, 50, 50]],
                   [0.9, 0.8, 0.7, 0.2], [0, 0, 1, 1])  # a hit, a confusion b->a, a false alarm, one below 0.5
    match = match_image(found, truth, labels, threshold=0.5)
    rows = confusion_rows([match], CLASSES)
    assert sorted((r["actual"], r["predicted"]) for r in rows) == [
        ("a", "a"), ("b", "a"), ("b", "background"), ("background", "b")]
    rates = per_class_rates([match], CLASSES)
    assert rates["a"] == {"boxes": 1, "detections": 2, "precision": 0.5, "recall": 1.0}
    assert rates["b"] == {"boxes": 2, "detections": 1, "precision": 0.0, "recall": 0.0}
    assert match.mistakes == 3
