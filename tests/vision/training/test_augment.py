"""Augmentations and corruptions: each one changes the image, keeps its shape and type, and repeats exactly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data as skimage_data

from core.spec.training import AugmentSection
from vision.data.dataset import AugmentedImages, SplitData
from vision.training.augment import CORRUPTIONS, GEOMETRIC_AND_COLOUR, apply, corruption, enabled, training_pipeline


def _photo(size: int) -> np.ndarray:
    return np.asarray(Image.fromarray(skimage_data.astronaut()).resize((size, size)))


@pytest.mark.parametrize("size", [32, 96])
@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_each_corruption_changes_the_image_and_keeps_shape_and_dtype(name: str, size: int) -> None:
    image = _photo(size)
    for severity in (1, 3, 5):
        out = apply(corruption(name, severity, size, seed=0), image)
        assert out.shape == image.shape, (name, severity)
        assert out.dtype == np.uint8, (name, severity)
        assert np.abs(out.astype(int) - image).mean() > 1.0, (name, severity)


@pytest.mark.parametrize("name", GEOMETRIC_AND_COLOUR)
def test_each_standard_augmentation_changes_the_image_and_keeps_shape(name: str) -> None:
    image = _photo(48)
    pipeline = training_pipeline(AugmentSection.model_validate({name: 1.0}), 48, seed=3)
    assert pipeline is not None
    out = apply(pipeline, image)
    assert out.shape == image.shape
    assert out.dtype == np.uint8
    assert not np.array_equal(out, image)


def test_every_spec_augmentation_has_a_transform() -> None:
    every = AugmentSection.model_validate({n: 0.5 for n in AugmentSection.model_fields if n != "severity"})
    assert set(enabled(every)) == set(AugmentSection.model_fields) - {"severity"}
    assert set(enabled(every)) - set(GEOMETRIC_AND_COLOUR) <= set(CORRUPTIONS)


def test_severity_makes_noise_stronger_and_is_bounded() -> None:
    image = _photo(64)
    change = [np.abs(apply(corruption("gaussian_noise", s, 64), image).astype(int) - image).mean() for s in (1, 5)]
    assert change[1] > 2 * change[0]
    with pytest.raises(ValueError, match=r"severity must be 1\.\.5"):
        corruption("fog", 6, 64)


def test_no_probability_means_no_pipeline_and_same_seed_means_same_draws() -> None:
    assert training_pipeline(AugmentSection(), 32, seed=0) is None
    spec = AugmentSection(motion_blur=0.5, occlusion=0.5, low_light=0.5, rain=0.5)
    images = [_photo(32)] * 6

    def draws(seed: int) -> list[np.ndarray]:
        pipeline = training_pipeline(spec, 32, seed)
        assert pipeline is not None
        return [apply(pipeline, image) for image in images]

    first, again, other = draws(1), draws(1), draws(2)
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other, strict=True))


def test_augmented_dataset_serves_normalised_tensors(tmp_path: Path) -> None:
    split = SplitData(np.stack([_photo(32)] * 3), np.array([0, 1, 0]), ["a", "b", "c"])
    pipeline = training_pipeline(AugmentSection(occlusion=1.0), 32, seed=0)
    assert pipeline is not None
    x, y = AugmentedImages(split, pipeline)[1]
    assert tuple(x.shape) == (3, 32, 32)
    assert int(y) == 1
    assert float(x.min()) >= -1.0
    assert float(x.max()) <= 1.0


def _damage(name: str, severity: int, size: int) -> float:
    image = _photo(size)
    return float(np.mean([np.abs(apply(corruption(name, severity, size, seed), image).astype(int) - image).mean()
                          for seed in range(6)]))


@pytest.mark.parametrize("size", [32, 224])
@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_a_higher_severity_damages_more_at_any_input_size(name: str, size: int) -> None:
    assert _damage(name, 5, size) > _damage(name, 1, size), name


def test_fog_thickens_steadily_with_severity_on_small_images() -> None:
    damage = [_damage("fog", severity, 32) for severity in (1, 2, 3, 4, 5)]
    assert damage == sorted(damage), damage  # it once fogged severity 1 the most at 32 px


@pytest.mark.parametrize("size", [32, 96])
def test_fog_at_a_working_size_is_seeded_like_every_other_transform(size: int) -> None:
    """Below FOG_WORKING_SIZE fog runs inside AtWorkingSize: its draws must follow the pipeline's seed, or a
    rerun trains on other images (albumentations seeds a Compose's transforms through set_random_seed)."""
    from vision.training.augment import FOG_WORKING_SIZE

    assert size < FOG_WORKING_SIZE
    image = np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)

    def three_draws() -> list[np.ndarray]:
        pipeline = training_pipeline(AugmentSection(fog=1.0), size, seed=5)
        assert pipeline is not None
        return [pipeline(image=image)["image"] for _ in range(3)]

    runs = [three_draws(), three_draws()]
    for first, second in zip(*runs, strict=True):
        assert np.array_equal(first, second)
    assert not np.array_equal(runs[0][0], runs[0][1])  # fresh draws from one image to the next
