"""Out-of-distribution evaluation sets built offline from data that ships inside installed packages.

far: random crops of real photographs (scikit-image's sample photos and
scikit-learn's two sample images) and synthetic noise; near: test images whose
meaning is destroyed but whose low-level statistics survive (shuffled patches,
heavy occlusion). All seeded, all at the model's input size, and all made a batch at a time as they are
read (vision.data.streams): a set as large as the test split never sits whole in memory.

The photos are split in two pools: the gate's sets are cut from one, and
`detector: auto` chooses its detector on sets cut from the other (and from the
validation split), so the choice never sees the images it is judged on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from vision.data.imageio import UnreadableImage, decode_file
from vision.data.sources import IMAGE_SUFFIXES
from vision.data.streams import Generated, ImageFiles, Images, Mapped, materialise

PHOTOS = ("astronaut", "camera", "chelsea", "coffee", "hubble_deep_field", "immunohistochemistry", "moon",
          "rocket", "coins", "clock", "colorwheel", "grass", "gravel", "brick", "page", "text")
"""scikit-image sample images that ship inside the wheel (no download)."""

SELECTION_PHOTOS = ("coffee", "grass", "brick", "text")
"""The photos only detector selection crops (an object, two textures, a document); the gate never sees them."""


def _rgb(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    return np.ascontiguousarray(image[..., :3]).astype(np.uint8)


def photographs(pool: str = "gate") -> list[np.ndarray]:
    """The 'gate' pool (every photo but the selection ones, with scikit-learn's two) or the 'selection' pool."""
    from skimage import data
    from sklearn.datasets import load_sample_images

    if pool == "selection":
        return [_rgb(getattr(data, name)()) for name in SELECTION_PHOTOS]
    if pool != "gate":
        raise ValueError(f"unknown photo pool '{pool}' (gate or selection)")
    return ([_rgb(getattr(data, name)()) for name in PHOTOS if name not in SELECTION_PHOTOS]
            + [_rgb(i) for i in load_sample_images().images])


def photo_crop_stream(count: int, size_px: int, seed: int, pool: str = "gate") -> Generated:
    """`count` random square crops (a quarter to all of the shorter side) of real photos, resized."""
    def make() -> Iterator[np.ndarray]:
        rng = np.random.default_rng(seed)
        photos = photographs(pool)
        for _ in range(count):
            photo = photos[rng.integers(len(photos))]
            height, width = photo.shape[:2]
            side = int(rng.integers(min(height, width) // 4, min(height, width) + 1))
            top, left = int(rng.integers(0, height - side + 1)), int(rng.integers(0, width - side + 1))
            crop = Image.fromarray(photo[top:top + side, left:left + side]).resize((size_px, size_px),
                                                                                  Image.BILINEAR)
            yield np.asarray(crop)

    return Generated(count, size_px, make)


def noise_stream(count: int, size_px: int, seed: int) -> Generated:
    """Half uniform noise, half smooth blobs (low-frequency noise), as uint8 RGB."""
    def make() -> Iterator[np.ndarray]:
        rng = np.random.default_rng(seed)
        for _ in range(count - count // 2):
            yield rng.integers(0, 256, (size_px, size_px, 3), dtype=np.uint8)
        for _ in range(count // 2):
            coarse = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
            yield np.asarray(Image.fromarray(coarse).resize((size_px, size_px), Image.BICUBIC))

    return Generated(count, size_px, make)


def patch_shuffler(grid: int, seed: int) -> Callable[[np.ndarray], np.ndarray]:
    """A function that cuts an image into grid x grid patches and puts them back in a random order (same pixels,
    no object), drawing from one seeded generator image after image."""
    rng = np.random.default_rng(seed)

    def shuffle(image: np.ndarray) -> np.ndarray:
        height, width = image.shape[:2]
        ph, pw = height // grid, width // grid
        out = image.copy()
        patches = [image[r * ph:(r + 1) * ph, c * pw:(c + 1) * pw] for r in range(grid) for c in range(grid)]
        for slot, source in enumerate(rng.permutation(len(patches))):
            r, c = divmod(slot, grid)
            out[r * ph:(r + 1) * ph, c * pw:(c + 1) * pw] = patches[source]
        return out

    return shuffle


def occluder(share: float, seed: int) -> Callable[[np.ndarray], np.ndarray]:
    """A function that covers `share` of an image with a grey square at a random place (one seeded generator,
    image after image)."""
    rng = np.random.default_rng(seed)

    def occlude(image: np.ndarray) -> np.ndarray:
        height, width = image.shape[:2]
        side = round(float(np.sqrt(share)) * min(height, width))
        top, left = int(rng.integers(0, height - side + 1)), int(rng.integers(0, width - side + 1))
        out = image.copy()
        out[top:top + side, left:left + side] = 127
        return out

    return occlude


def photo_crops(count: int, size_px: int, seed: int, pool: str = "gate") -> np.ndarray:
    return materialise(photo_crop_stream(count, size_px, seed, pool))


def noise_images(count: int, size_px: int, seed: int) -> np.ndarray:
    return materialise(noise_stream(count, size_px, seed))


def shuffled_patches(images: Images, grid: int, seed: int) -> Mapped:
    """Each image of `images` with its patches shuffled (patch_shuffler), made as it is read."""
    return Mapped(images, lambda: patch_shuffler(grid, seed))


def heavy_occlusion(images: Images, share: float, seed: int) -> Mapped:
    """Each image of `images` with `share` of it grey (occluder), made as it is read."""
    return Mapped(images, lambda: occluder(share, seed))


def _rgb_at(path: Path, size_px: int) -> np.ndarray:
    return np.asarray(decode_file(path).convert("RGB").resize((size_px, size_px), Image.Resampling.BICUBIC),
                      dtype=np.uint8)


def folder_images(folder: Path, size_px: int, reader: Callable[[Path, int], np.ndarray] | None = None
                  ) -> tuple[ImageFiles, list[str]]:
    """Every readable image under `folder` (recursively, sorted), read at the model's size when used (by
    `reader`, when the task presents images otherwise: a detector letterboxes them); and the files that could
    not be decoded, so the report can name them instead of failing."""
    readable, unreadable = [], []
    for file in sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES):
        try:
            decode_file(file)
        except UnreadableImage:
            unreadable.append(file.as_posix())
            continue
        readable.append(file)
    return ImageFiles(readable, size_px, reader or _rgb_at), unreadable


@dataclass(frozen=True)
class OodSet:
    name: str
    kind: str
    """'far' (unrelated images: gated) or 'near' (test images with their meaning destroyed: reported)."""
    images: Images


def ood_sets(test: Images, size_px: int, seed: int, extra: dict[str, Images]) -> list[OodSet]:
    """The evaluation sets, all built offline and seeded, made as they are read; far sets as large as the test
    split (at least 100)."""
    count = max(100, len(test))
    sets = [OodSet("photos", "far", photo_crop_stream(count, size_px, seed)),
            OodSet("noise", "far", noise_stream(count, size_px, seed + 1)),
            *(OodSet(name, "far", images) for name, images in sorted(extra.items()) if len(images)),
            OodSet("shuffled_patches", "near", shuffled_patches(test, 4, seed + 2)),
            OodSet("occlusion", "near", heavy_occlusion(test, 0.6, seed + 3))]
    return sets


def selection_sets(val: Images, size_px: int, seed: int) -> list[OodSet]:
    """What `detector: auto` chooses on: held-out photos, fresh noise and the validation split destroyed, so no
    image of the gate's sets (nor of the test split) takes part in the choice."""
    count = max(100, len(val))
    return [OodSet("selection_photos", "far", photo_crop_stream(count, size_px, seed + 10, pool="selection")),
            OodSet("selection_noise", "far", noise_stream(count, size_px, seed + 11)),
            OodSet("selection_shuffled_patches", "near", shuffled_patches(val, 4, seed + 12)),
            OodSet("selection_occlusion", "near", heavy_occlusion(val, 0.6, seed + 13))]
