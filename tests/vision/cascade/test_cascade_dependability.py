"""The pair's dependability figures: corruptions of the whole image drawn alike on every run (and refused when they
would move boxes), each family's drop from the clean figure, the share of far images answered with a named box,
and the combined score's calibration."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from runtime.cascade import CascadeAnswer, CascadeBox
from vision.cascade.dependability import SweepRow, answered, combined_dece, corrupting, families, far_sets
from vision.cascade.evaluation import TruthImage


def test_a_corruption_is_drawn_alike_on_every_run_and_never_moves_a_box() -> None:
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (60, 90, 3), dtype=np.uint8))
    first, again = corrupting("gaussian_noise", 3, seed=5)(image, 2), corrupting("gaussian_noise", 3, seed=5)(image, 2)
    assert first.size == image.size
    assert np.array_equal(np.asarray(first), np.asarray(again))
    assert not np.array_equal(np.asarray(first), np.asarray(image))
    with pytest.raises(ValueError, match="moves pixels"):
        corrupting("rotation", 1, seed=0)


def test_each_family_reports_its_mean_and_its_drop_from_clean() -> None:
    rows = [SweepRow("fog", 1, 0.5, 0.7), SweepRow("fog", 3, 0.3, 0.5), SweepRow("snow", 1, 0.6, 0.8)]
    assert families(0.6, rows) == {"fog": {"mean_map": 0.4, "drop": 0.2}, "snow": {"mean_map": 0.6, "drop": 0.0}}


def _answer(fine: str | None, abstained: bool = False, score: float = 0.9) -> CascadeAnswer:
    boxes = () if abstained else (CascadeBox((0, 0, 10, 10), "thing", score, fine, 0.8),)
    return CascadeAnswer(boxes, abstained)


def test_a_far_image_counts_as_answered_only_with_a_named_box() -> None:
    assert answered([_answer("a"), _answer(None), _answer("a", abstained=True), CascadeAnswer((), False)]) == 0.25
    assert answered([]) == 0.0
    sets = far_sets(48, seed=1, count=3)
    assert set(sets) == {"textures", "noise", "photos"}
    assert all(image.size == (48, 48) for images in sets.values() for image in images)


def test_the_combined_score_is_calibrated_against_a_right_box_with_the_right_class() -> None:
    images = [TruthImage("a.png", np.asarray([[0, 0, 10, 10]], np.float32), np.asarray([0]), np.asarray([0]))] * 4
    right = combined_dece([_answer("a", score=1.0)] * 4, images, ["a", "b"])
    assert right == {"dece": pytest.approx(0.2), "detections": 4}, "sure of 0.8, right every time"
    wrong = combined_dece([_answer("b", score=1.0)] * 4, images, ["a", "b"])
    assert wrong["dece"] == pytest.approx(0.8), "sure of 0.8, never right"
