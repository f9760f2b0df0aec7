"""Crops of a detection data set for a cascade's classifier: padded, clipped, grouped by image, small ones
quarantined with their reason."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from runtime.windows import crop_window
from vision.data.crops import BoxRow, CropRule, crops
from vision.data.imageio import UnreadableImage


def test_the_window_grows_by_the_padding_and_stays_inside_the_image() -> None:
    assert crop_window((10, 20, 30, 60), 100, 100, 0.1) == (8, 16, 32, 64)
    assert crop_window((0, 0, 50, 50), 40, 40, 0.5) == (0, 0, 40, 40)
    assert crop_window((39.6, 10, 39.6, 10), 40, 40, 0.0) == (39, 10, 40, 11), "never empty, never outside"


def test_each_box_becomes_a_crop_with_its_label_grouped_by_its_image(tmp_path: Path) -> None:
    pixels = np.zeros((64, 96, 3), np.uint8)
    pixels[8:40, 10:50] = (200, 10, 10)  # the red box's pixels
    pixels[30:62, 60:90] = (10, 10, 200)
    Image.fromarray(pixels).save(tmp_path / "street.png")
    rows = [BoxRow("street.png", "sedan", 10, 8, 50, 40), BoxRow("street.png", "bus", 60, 30, 90, 62),
            BoxRow("street.png", "bike", 0, 0, 5, 5)]
    found = list(crops(rows, tmp_path, CropRule(padding=0.0, min_size_px=8)))
    assert [(c.label, c.origin, c.group) for c in found] == [
        ("sedan", "street.png#box 0", "street.png"), ("bus", "street.png#box 1", "street.png"),
        ("bike", "street.png#box 2", "street.png")]
    sedan, bus = np.asarray(found[0].read()), np.asarray(found[1].read())
    assert sedan.shape == (32, 40, 3)
    assert (sedan == (200, 10, 10)).all()
    assert bus.shape == (32, 30, 3)
    assert (bus == (10, 10, 200)).all()
    with pytest.raises(UnreadableImage, match="crop of 5x5 px is below min_size_px 8"):
        found[2].read()
