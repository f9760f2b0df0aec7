"""Out-of-distribution evaluation sets built offline from data that ships inside installed packages.

far: random crops of real photographs (scikit-image's sample photos and
scikit-learn's two sample images) and synthetic noise; near: test images whose
meaning is destroyed but whose low-level statistics survive (shuffled patches,
heavy occlusion). All seeded, all at the model's input size.

The photos are split in two pools: the gate's sets are cut from one, and
`detector: auto` chooses its detector on sets cut from the other (and from the
validation split), so the choice never sees the images it is judged on.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from vision.data.imageio import UnreadableImage, decode_file
from vision.data.sources import IMAGE_SUFFIXES

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


def photo_crops(count: int, size_px: int, seed: int, pool: str = "gate") -> np.ndarray:
    """`count` random square crops (a quarter to all of the shorter side) of real photos, resized."""
    rng = np.random.default_rng(seed)
    photos = photographs(pool)
    crops = []
    for _ in range(count):
        photo = photos[rng.integers(len(photos))]
        height, width = photo.shape[:2]
        side = int(rng.integers(min(height, width) // 4, min(height, width) + 1))
        top, left = int(rng.integers(0, height - side + 1)), int(rng.integers(0, width - side + 1))
        crop = Image.fromarray(photo[top:top + side, left:left + side]).resize((size_px, size_px), Image.BILINEAR)
        crops.append(np.asarray(crop))
    return np.stack(crops)


def noise_images(count: int, size_px: int, seed: int) -> np.ndarray:
    """Half uniform noise, half smooth blobs (low-frequency noise), as uint8 RGB."""
    rng = np.random.default_rng(seed)
    uniform = rng.integers(0, 256, (count - count // 2, size_px, size_px, 3), dtype=np.uint8)
    coarse = rng.integers(0, 256, (count // 2, 4, 4, 3), dtype=np.uint8)
    blobs = np.stack([np.asarray(Image.fromarray(c).resize((size_px, size_px), Image.BICUBIC)) for c in coarse]) \
        if count // 2 else np.zeros((0, size_px, size_px, 3), np.uint8)
    return np.concatenate([uniform, blobs])


def shuffled_patches(images: np.ndarray, grid: int, seed: int) -> np.ndarray:
    """Each image cut into grid x grid patches put back in a random order: same pixels, no object."""
    rng = np.random.default_rng(seed)
    n, height, width, _ = images.shape
    ph, pw = height // grid, width // grid
    out = images.copy()
    for i in range(n):
        patches = [images[i, r * ph:(r + 1) * ph, c * pw:(c + 1) * pw] for r in range(grid) for c in range(grid)]
        for slot, source in enumerate(rng.permutation(len(patches))):
            r, c = divmod(slot, grid)
            out[i, r * ph:(r + 1) * ph, c * pw:(c + 1) * pw] = patches[source]
    return out


def heavy_occlusion(images: np.ndarray, share: float, seed: int) -> np.ndarray:
    """A grey square covering `share` of each image at a random place."""
    rng = np.random.default_rng(seed)
    n, height, width, _ = images.shape
    side = round(float(np.sqrt(share)) * min(height, width))
    out = images.copy()
    for i in range(n):
        top, left = int(rng.integers(0, height - side + 1)), int(rng.integers(0, width - side + 1))
        out[i, top:top + side, left:left + side] = 127
    return out


def folder_images(folder: Path, size_px: int) -> tuple[np.ndarray, list[str]]:
    """Every readable image under `folder` (recursively, sorted), as RGB at the model's size; and the files
    that could not be decoded, so the report can name them instead of failing."""
    images, unreadable = [], []
    for file in sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES):
        try:
            image = decode_file(file).convert("RGB")
        except UnreadableImage:
            unreadable.append(file.as_posix())
            continue
        images.append(np.asarray(image.resize((size_px, size_px), Image.Resampling.BICUBIC), dtype=np.uint8))
    return (np.stack(images) if images else np.zeros((0, size_px, size_px, 3), np.uint8)), unreadable
