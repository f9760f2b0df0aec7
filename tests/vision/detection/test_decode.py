"""The numpy decoder and NMS on hand-made tensors, and the letterbox mapping back to image pixels."""

from __future__ import annotations

import numpy as np

from runtime.detections import Decoding, Letterbox, detect, iou_matrix, locations, nms

LOGIT_HIGH, LOGIT_LOW = 6.0, -9.0


def _sigmoid(x: float) -> float:
    return 1 / (1 + np.exp(-x))


def test_locations_follow_torchvision_fcos_grid_level_by_level() -> None:
    centres, strides = locations((32, 16), (8, 16))
    assert centres.shape == (4 * 2 + 2 * 1, 2)  # 16/8 x 32/8 locations, then 16/16 x 32/16
    assert centres[:5].tolist() == [[0, 0], [8, 0], [16, 0], [24, 0], [0, 8]]  # row-major, at j*s, i*s
    assert centres[8:].tolist() == [[0, 0], [16, 0]]
    assert strides.tolist() == [8] * 8 + [16] * 2


def test_one_confident_location_decodes_to_its_box_with_the_fcos_score() -> None:
    decoding = Decoding((32, 32), (8,), score_threshold=0.05, nms_iou=0.5, max_detections=10)
    count = 16
    logits = np.full((count, 3), LOGIT_LOW, np.float32)
    regression = np.zeros((count, 4), np.float32)
    centerness = np.full(count, LOGIT_LOW, np.float32)
    at = 1 * 4 + 2  # row 1, column 2: centre (16, 8)
    logits[at, 2], centerness[at] = LOGIT_HIGH, 0.0
    regression[at] = [1.0, 0.5, 2.0, 1.5]  # l, t, r, b in strides of 8
    found = detect(logits, regression, centerness, decoding)
    assert found.labels.tolist() == [2]
    assert found.boxes.tolist() == [[8.0, 4.0, 32.0, 20.0]]
    assert np.isclose(found.scores[0], np.sqrt(_sigmoid(LOGIT_HIGH) * 0.5))


def test_nms_keeps_the_best_box_per_class_and_boxes_of_other_classes() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [0, 0, 10, 10], [20, 20, 30, 30]], np.float32)
    scores = np.array([0.6, 0.9, 0.8, 0.7], np.float32)
    labels = np.array([0, 0, 1, 0])
    # box 1 (0.9) suppresses box 0 (IoU 0.68, same class); box 2 is another class; box 3 does not overlap
    assert nms(boxes, scores, labels, iou=0.5, limit=10).tolist() == [1, 2, 3]
    assert nms(boxes, scores, labels, iou=0.5, limit=2).tolist() == [1, 2]
    assert nms(boxes, scores, labels, iou=0.7, limit=10).tolist() == [1, 2, 3, 0]  # 0.68 < 0.7: both stay


def _greedy_nms(boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray, iou: float, limit: int) -> list[int]:
    """Greedy NMS as its definition reads, one box at a time: the reference the vectorised one must equal."""
    order = sorted(range(len(scores)), key=lambda i: (-float(scores[i]), i))
    kept: list[int] = []
    for i in order:
        if len(kept) == limit:
            break
        if not any(labels[k] == labels[i] and iou_matrix(boxes[k:k + 1], boxes[i:i + 1])[0, 0] >= iou for k in kept):
            kept.append(i)
    return kept


def test_nms_equals_greedy_nms_on_crowds_ties_and_broken_boxes() -> None:
    rng = np.random.default_rng(3)
    for case in range(300):
        n, classes = int(rng.integers(0, 120)), int(rng.integers(1, 4))
        corner = rng.uniform(0, 60, (n, 2))
        size = rng.uniform(-2, 30, (n, 2))  # some boxes inverted: no area
        if case % 3 == 0:  # on a grid: equal boxes and exact IoU ties with the threshold
            corner, size = np.round(corner / 5) * 5, np.round(size / 5) * 5
        boxes = np.concatenate([corner, corner + size], axis=1).astype(np.float32)
        scores = rng.uniform(0, 1, n).astype(np.float32)
        if case % 2:
            scores = np.round(scores * 4) / 4  # equal scores: the lower index goes first
        if case % 5 == 0 and n:
            boxes[rng.integers(0, n)] = np.nan  # a broken box overlaps nothing
        labels = rng.integers(0, classes, n)
        iou, limit = float(rng.choice([0.0, 0.25, 0.5, 1.0])), int(rng.choice([1, 3, 100]))
        assert nms(boxes, scores, labels, iou, limit).tolist() == _greedy_nms(boxes, scores, labels, iou, limit), case


def test_iou_of_hand_made_boxes() -> None:
    a = np.array([[0, 0, 10, 10]])
    b = np.array([[5, 0, 15, 10], [0, 0, 10, 10], [20, 20, 30, 30]])
    assert np.allclose(iou_matrix(a, b), [[50 / 150, 1.0, 0.0]])


def test_detections_map_back_through_the_letterbox_and_are_clipped() -> None:
    fit = Letterbox.fit(200, 100, (64, 64))  # scaled by 0.32 to 64 x 32, padded below
    assert fit.scaled_size() == (64, 32)
    assert fit.to_image(np.array([[16, 8, 32, 16]])).tolist() == [[50.0, 25.0, 100.0, 50.0]]
    assert fit.to_image(np.array([[60, 30, 70, 40]])).tolist() == [[187.5, 93.75, 200.0, 100.0]]


def test_low_scores_are_dropped_and_max_detections_holds() -> None:
    decoding = Decoding((16, 16), (8,), score_threshold=0.3, nms_iou=0.5, max_detections=2)
    logits = np.array([[4.0], [3.0], [2.0], [-9.0]], np.float32)
    regression = np.full((4, 4), 0.25, np.float32)  # tiny boxes around each location: no overlaps
    found = detect(logits, regression, np.zeros(4, np.float32), decoding)
    assert len(found) == 2
    assert found.scores[0] > found.scores[1] > 0.3
