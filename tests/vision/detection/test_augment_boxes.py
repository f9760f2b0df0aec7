"""Box-aware augmentations keep every box on its object: a white square on black, augmented by every geometric
and corruption transform the spec offers, still has its box around the white pixels."""

from __future__ import annotations

import numpy as np
import pytest

from core.spec.training import AugmentSection
from vision.detection.augment import detection_pipeline

SIZE = (96, 64)  # width, height: not square, so a mix-up of axes shows


def _scene() -> tuple[np.ndarray, np.ndarray]:
    image = np.zeros((SIZE[1], SIZE[0], 3), np.uint8)
    image[10:30, 50:80] = 255
    return image, np.array([[50.0, 10.0, 80.0, 30.0]], np.float32)


def _white_extent(image: np.ndarray) -> np.ndarray:
    rows, cols = np.nonzero(image.mean(axis=2) > 128)
    return np.array([cols.min(), rows.min(), cols.max() + 1, rows.max() + 1], np.float32)


@pytest.mark.parametrize("name", ["horizontal_flip", "random_crop"])
def test_geometric_augmentations_move_the_box_with_the_object(name: str) -> None:
    image, boxes = _scene()
    pipeline = detection_pipeline(AugmentSection.model_validate({name: 1.0}), SIZE, 0.3, seed=3)
    for _ in range(5):  # several draws of the random parameters
        out = pipeline(image=image, bboxes=boxes, labels=np.array([0]))
        assert out["image"].shape == image.shape
        assert len(out["bboxes"]) == 1
        assert np.abs(np.asarray(out["bboxes"][0]) - _white_extent(out["image"])).max() <= 1.5


def test_horizontal_flip_mirrors_the_box_exactly() -> None:
    image, boxes = _scene()
    out = detection_pipeline(AugmentSection(horizontal_flip=1.0), SIZE, 0.3, seed=0)(
        image=image, bboxes=boxes, labels=np.array([0]))
    assert np.allclose(out["bboxes"], [[16.0, 10.0, 46.0, 30.0]], atol=1e-4)  # albumentations works in fractions


def test_occlusion_keeps_a_box_only_within_the_object() -> None:
    """CoarseDropout is box-aware: it may shrink a box to what stays visible (or drop it), never move it off."""
    image, boxes = _scene()
    pipeline = detection_pipeline(AugmentSection(occlusion=1.0), SIZE, 0.0, seed=1)
    for _ in range(5):
        out = pipeline(image=image, bboxes=boxes, labels=np.array([0]))
        for x1, y1, x2, y2 in np.asarray(out["bboxes"]).reshape(-1, 4):
            assert 49 <= x1 < x2 <= 80
            assert 10 <= y1 < y2 <= 30


@pytest.mark.parametrize("name", ["motion_blur", "low_light", "pixelate", "fog", "rain", "snow"])
def test_corruptions_leave_boxes_where_they_were(name: str) -> None:
    image, boxes = _scene()
    pipeline = detection_pipeline(AugmentSection.model_validate({name: 1.0}), SIZE, 0.0, seed=1)
    out = pipeline(image=image, bboxes=boxes, labels=np.array([0]))
    assert np.allclose(out["bboxes"], boxes, atol=1e-4)
    assert out["image"].shape == image.shape
    assert out["labels"].tolist() == [0]


def test_a_box_cut_below_min_visibility_leaves_the_view() -> None:
    import albumentations as A

    from vision.detection.augment import box_params

    image, boxes = _scene()
    crop = A.Compose([A.Crop(x_min=0, y_min=0, x_max=55, y_max=64)], bbox_params=box_params(0.3))
    assert len(crop(image=image, bboxes=boxes, labels=np.array([0]))["bboxes"]) == 0  # 5 of 30 px remain
    kept = A.Compose([A.Crop(x_min=0, y_min=0, x_max=70, y_max=64)], bbox_params=box_params(0.3))
    assert np.allclose(kept(image=image, bboxes=boxes, labels=np.array([0]))["bboxes"], [[50, 10, 70, 30]], atol=1e-4)
