"""OOD evaluation sets: offline, seeded, at the model's input size, and what their names promise."""

from __future__ import annotations

import numpy as np

from vision.data.streams import materialise
from vision.dependability.ood_sets import heavy_occlusion, noise_images, photo_crops, shuffled_patches


def test_photo_crops_are_real_varied_and_repeatable() -> None:
    crops = photo_crops(12, 32, seed=3)
    assert crops.shape == (12, 32, 32, 3)
    assert crops.dtype == np.uint8
    assert np.array_equal(crops, photo_crops(12, 32, seed=3))
    assert not np.array_equal(crops, photo_crops(12, 32, seed=4))
    assert len({c.tobytes() for c in crops}) == 12
    assert crops.std() > 20  # photographs, not flat fields


def test_noise_images_mix_uniform_and_smooth_noise() -> None:
    noise = noise_images(5, 16, seed=0)
    assert noise.shape == (5, 16, 16, 3)
    uniform, smooth = noise[:3], noise[3:]
    step = lambda x: np.abs(np.diff(x.astype(int), axis=1)).mean()  # noqa: E731
    assert step(uniform) > 3 * step(smooth)


def test_shuffled_patches_keep_the_pixels_and_move_them() -> None:
    images = np.arange(2 * 8 * 8 * 3, dtype=np.uint8).reshape(2, 8, 8, 3)
    shuffled = materialise(shuffled_patches(images, grid=4, seed=0))
    assert not np.array_equal(shuffled, images)
    for original, mixed in zip(images, shuffled, strict=True):
        assert sorted(original.ravel().tolist()) == sorted(mixed.ravel().tolist())


def test_heavy_occlusion_covers_the_asked_share() -> None:
    images = np.zeros((3, 20, 20, 3), np.uint8)
    covered = materialise(heavy_occlusion(images, share=0.49, seed=0))
    assert all(int((image == 127).all(axis=-1).sum()) == 14 * 14 for image in covered)
