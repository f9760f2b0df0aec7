"""Image sets read a batch at a time: the same images as the whole array, in order, on every pass."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vision.data.dataset import SplitData
from vision.data.imageio import load_rgb
from vision.data.streams import Generated, ImageFiles, Mapped, RawImages, batches, image_bytes, materialise, spread
from vision.dependability.ood_sets import heavy_occlusion, noise_stream, occluder, photo_crop_stream
from vision.training.hpo import fingerprint


@pytest.fixture
def files(tmp_path: Path) -> list[Path]:
    rng = np.random.default_rng(0)
    paths = []
    for i in range(7):
        path = tmp_path / f"{i}.png"
        Image.fromarray(rng.integers(0, 256, (20 + i, 30, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def test_image_files_index_like_an_array_of_the_decoded_images(files: list[Path]) -> None:
    whole = np.stack([load_rgb(p, 16) for p in files])
    images = ImageFiles(files, 16)
    assert images.shape == whole.shape
    assert len(images) == 7
    assert np.array_equal(images[3], whole[3])
    assert np.array_equal(images[2:5], whole[2:5])
    assert np.array_equal(images[[6, 0, 6]], whole[[6, 0, 6]])
    mask = np.array([True, False, True, False, False, False, True])
    assert np.array_equal(images[mask], whole[mask])
    assert np.array_equal(np.concatenate(list(images.batches(3))), whole)
    assert [len(b) for b in images.batches(3)] == [3, 3, 1]
    assert np.array_equal(images.resized(8)[0], load_rgb(files[0], 8))
    assert images[5:5].shape == (0, 16, 16, 3)


def test_taking_from_a_split_keeps_the_images_unread_and_aligned(files: list[Path]) -> None:
    split = SplitData(ImageFiles(files, 16), np.arange(7), [p.name for p in files])
    taken = split.take([4, 1])
    assert isinstance(taken.images, ImageFiles)
    assert taken.labels.tolist() == [4, 1]
    assert taken.paths == ["4.png", "1.png"]
    assert np.array_equal(taken.images[0], split.images[4])
    masked = split.take(np.arange(7) % 2 == 0)
    assert masked.labels.tolist() == [0, 2, 4, 6]


def test_generated_and_mapped_sets_give_the_same_images_on_every_pass_and_at_any_batch_size() -> None:
    for stream in (photo_crop_stream(9, 24, seed=1), noise_stream(9, 24, seed=2)):
        first = materialise(stream)
        assert first.shape == (9, 24, 24, 3)
        assert np.array_equal(first, materialise(stream))
        assert np.array_equal(first, np.concatenate(list(stream.batches(4))))
    base = np.random.default_rng(3).integers(0, 256, (5, 20, 20, 3), dtype=np.uint8)
    occlude = occluder(0.25, seed=4)
    expected = np.stack([occlude(image) for image in base])  # one generator drawing image after image
    stream = heavy_occlusion(base, 0.25, seed=4)
    assert isinstance(stream, Mapped)
    assert np.array_equal(np.concatenate(list(stream.batches(2))), expected)
    assert np.array_equal(materialise(stream), expected)


def test_raw_bytes_batch_by_batch_hash_like_the_whole_array(files: list[Path]) -> None:
    images = ImageFiles(files, 16)
    whole = materialise(images)
    assert b"".join(image_bytes(images)) == whole.tobytes()
    assert fingerprint("x", image_bytes(images), 3) == fingerprint("x", whole.tobytes(), 3)
    assert fingerprint(image_bytes(images)) != fingerprint(image_bytes(images.resized(8)))


def test_batches_of_an_array_and_of_a_generated_set_are_consecutive() -> None:
    array = np.arange(5 * 2 * 2 * 3, dtype=np.uint8).reshape(5, 2, 2, 3)
    assert [b[0, 0, 0, 0] for b in batches(array, 2)] == [0, 24, 48]
    counter = Generated(5, 2, lambda: iter(array))
    assert np.array_equal(np.concatenate(list(batches(counter, 2))), array)


def test_raw_images_decoded_once_read_back_exactly(files: list[Path], tmp_path: Path) -> None:
    source = ImageFiles(files, 16)
    whole = materialise(source)
    split = SplitData(source, np.arange(7), [p.name for p in files]).decoded_once(tmp_path)
    raw = split.images
    assert isinstance(raw, RawImages)
    assert raw.shape == whole.shape
    assert np.array_equal(raw[2], whole[2])
    assert np.array_equal(raw[-1], whole[-1])
    assert np.array_equal(raw[1:6], whole[1:6])
    assert np.array_equal(raw[::3], whole[::3])
    assert np.array_equal(raw[[5, 0]], whole[[5, 0]])
    assert np.array_equal(np.concatenate(list(raw.batches(4))), whole)
    with pytest.raises(IndexError):
        raw[7]
    in_memory = SplitData(whole, np.arange(7), [p.name for p in files])
    assert in_memory.decoded_once(tmp_path) is in_memory


@pytest.mark.parametrize(("total", "count"), [(1398, 200), (10, 10), (10, 3), (5, 200), (0, 4), (7, 0)])
def test_a_sample_spreads_over_the_split_without_repeats(total: int, count: int) -> None:
    chosen = spread(total, count)
    assert len(chosen) == min(total, count)
    assert len(set(chosen.tolist())) == len(chosen)
    assert all(0 <= i < total for i in chosen)
    if len(chosen) > 1:  # evenly spaced: no gap longer than the split over the sample, rounded up
        assert int(np.diff(np.r_[chosen, total]).max()) <= -(-total // len(chosen))


def test_a_calibration_sample_of_a_split_listed_class_by_class_holds_every_class() -> None:
    """Split files list images class folder by class folder: the first 200 of 1,398 training images were all one
    class, and int8 ranges measured on them clipped the others'."""
    labels = np.repeat(np.arange(3), [350, 350, 698])
    split = SplitData(np.zeros((len(labels), 2, 2, 3), np.uint8), labels, [str(i) for i in range(len(labels))])
    counts = np.bincount(split.sample(200).labels, minlength=3)
    assert counts.tolist() == pytest.approx([50, 50, 100], abs=1)
