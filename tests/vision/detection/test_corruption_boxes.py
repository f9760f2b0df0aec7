"""The corruption sweep keeps every box where the annotation says: pixel-only corruptions, same shapes, and the
object still stands out inside its box; geometric ones are refused."""

from __future__ import annotations

import numpy as np
import pytest

from core.spec.deployment import Robustness
from vision.detection.dependability import GEOMETRIC, corrupt_batches

BOX = (40, 24, 88, 72)  # x1, y1, x2, y2 in a 128 x 96 letterboxed input


def _scene() -> np.ndarray:
    image = np.full((2, 96, 128, 3), 60, np.uint8)
    x1, y1, x2, y2 = BOX
    image[:, y1:y2, x1:x2] = 230
    return image


@pytest.mark.parametrize("name", [n for n in Robustness.model_fields["corruptions"].default])
@pytest.mark.parametrize("severity", [1, 3])
def test_each_default_corruption_keeps_the_object_inside_its_box(name: str, severity: int) -> None:
    images = _scene()
    changed = corrupt_batches(name, severity, seed=0)(images)
    assert changed.shape == images.shape
    assert changed.dtype == np.uint8
    x1, y1, x2, y2 = BOX
    inside = changed[:, y1 + 6:y2 - 6, x1 + 6:x2 - 6].astype(float).mean()
    ring = np.ones(changed.shape[1:3], bool)
    ring[y1 - 8:y2 + 8, x1 - 8:x2 + 8] = False
    outside = changed[:, ring].astype(float).mean()
    assert inside > outside + 15, f"{name} s{severity}: the object no longer stands out where its box is"


def test_the_same_seed_draws_the_same_corruption() -> None:
    first = corrupt_batches("gaussian_noise", 2, seed=3)(_scene())
    again = corrupt_batches("gaussian_noise", 2, seed=3)(_scene())
    assert np.array_equal(first, again)


@pytest.mark.parametrize("name", GEOMETRIC)
def test_corruptions_that_move_pixels_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="boxes would move"):
        corrupt_batches(name, 1, seed=0)
