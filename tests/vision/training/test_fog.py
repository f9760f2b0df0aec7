"""The fast fog draws exactly the pixels albumentations' RandomFog draws, from the same random draws."""

from __future__ import annotations

import albumentations as A
import numpy as np
import pytest
from PIL import Image
from skimage import data as skimage_data

from vision.training.fog import FastRandomFog, disc_counts

SHAPES = [(224, 224), (160, 213), (32, 32), (301, 180), (64, 97)]


def _image(shape: tuple[int, int], kind: str) -> np.ndarray:
    if kind == "photo":
        return np.asarray(Image.fromarray(skimage_data.astronaut()).resize(shape[::-1]))
    if kind == "white":
        return np.full((*shape, 3), 255, np.uint8)
    return np.random.default_rng(sum(shape)).integers(0, 256, (*shape, 3), dtype=np.uint8)


@pytest.mark.parametrize("severity", [1, 3, 5])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("kind", ["photo", "noise", "white"])
def test_fast_fog_is_bit_identical_to_the_library(shape: tuple[int, int], severity: int, kind: str) -> None:
    image = _image(shape, kind)
    arguments = {"fog_coef_range": (0.12 * severity, 0.12 * severity + 0.1), "alpha_coef": 0.12, "p": 1.0}
    library = A.Compose([A.RandomFog(**arguments)], seed=severity)
    fast = A.Compose([FastRandomFog(**arguments)], seed=severity)
    for _ in range(2):  # the second draw checks that both consume their generators alike
        np.testing.assert_array_equal(fast(image=image)["image"], library(image=image)["image"])


def test_disc_counts_match_discs_drawn_one_by_one_at_the_border_too() -> None:
    import cv2

    shape = (40, 50)
    positions = [(0, 0), (49, 39), (50, 40), (25, 20), (25, 20), (10, 35), (-1, 5)]
    radiuses = [3, 6, 2, 9, 9, 1, 4]
    expected = np.zeros(shape, np.int32)
    for (x, y), radius in zip(positions, radiuses, strict=True):
        disc = np.zeros(shape, np.uint8)
        cv2.circle(disc, (x, y), radius, 1, thickness=-1)
        expected += disc
    np.testing.assert_array_equal(disc_counts(shape, positions, radiuses), expected)


def test_a_float_image_goes_through_the_library_path_and_a_grey_one_is_refused_as_there() -> None:
    photo = _image((48, 48), "photo").astype(np.float32) / 255
    arguments = {"fog_coef_range": (0.3, 0.4), "alpha_coef": 0.12, "p": 1.0}
    fast = A.Compose([FastRandomFog(**arguments)], seed=1)(image=photo)["image"]
    np.testing.assert_array_equal(fast, A.Compose([A.RandomFog(**arguments)], seed=1)(image=photo)["image"])
    with pytest.raises(ValueError, match="RGB"):
        A.Compose([FastRandomFog(p=1.0)], seed=0)(image=_image((48, 48), "photo")[..., :1])
