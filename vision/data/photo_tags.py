"""The embedded multi-label data set, built from real pixels only: mosaics of the real photographs that ship
with scikit-image and scikit-learn, each tagged with what its photographs show.

No multi-label image set ships inside a package, so this one is made so that its tags are true: a mosaic is a
grid of tiles, each tile one whole photograph (trimmed by at most TRIM of a side, mirrored at random, its
brightness varied a little, so the subject always stays in the tile), and the mosaic's tags are the union of
its photographs' tags (PHOTO_TAGS: a person, an animal, food, plants, a building). Photographs without a tag
(the rocket, coins, gravel) are distractors. Everything follows one seeded generator: the same settings give
the same bytes. Written as a `manifest.csv` (path, tags) beside `images/`, so it enters the pipeline through
the same `manifest` source a user's tagged data does.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from core.fsutil import write_csv
from vision.data.tags import TAG_SEPARATOR

PHOTO_TAGS: dict[str, tuple[str, ...]] = {
    "astronaut": ("person",), "camera": ("person",), "chelsea": ("animal",), "coffee": ("food",),
    "china.jpg": ("building", "plant"), "flower.jpg": ("plant",), "grass": ("plant",), "brick": ("building",),
    "rocket": (), "coins": (), "gravel": (),
}
"""Each photograph (scikit-image's by name, scikit-learn's sample images by file) -> what it shows."""
TAGS = sorted({tag for tags in PHOTO_TAGS.values() for tag in tags})
TRIM = 0.15
"""At most this share of a side is cut from a photograph for its tile."""


def _photos() -> dict[str, np.ndarray]:
    from skimage import data
    from sklearn.datasets import load_sample_images

    samples = load_sample_images()
    photos = {name: getattr(data, name)() for name in PHOTO_TAGS if not name.endswith(".jpg")}
    photos.update({Path(file).name: image for file, image in zip(samples.filenames, samples.images, strict=True)})
    return {name: np.ascontiguousarray(np.stack([p] * 3, -1) if p.ndim == 2 else p[..., :3]).astype(np.uint8)
            for name, p in sorted(photos.items())}


def _tile(photo: np.ndarray, side: int, rng: np.random.Generator) -> np.ndarray:
    """The photograph, trimmed a little, mirrored at random and its brightness varied, at side x side px."""
    height, width = photo.shape[:2]
    cut_h, cut_w = (int(rng.integers(0, int(extent * TRIM) + 1)) for extent in (height, width))
    top, left = int(rng.integers(0, cut_h + 1)), int(rng.integers(0, cut_w + 1))
    crop = photo[top:height - (cut_h - top), left:width - (cut_w - left)]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    tile = np.asarray(Image.fromarray(np.ascontiguousarray(crop)).resize((side, side), Image.Resampling.BILINEAR),
                      dtype=np.float32)
    return (tile * rng.uniform(0.8, 1.2)).clip(0, 255)


def generate(images: int, image_size_px: int, grid: int, seed: int, classes: Sequence[str] = TAGS
             ) -> Iterator[tuple[np.ndarray, list[str]]]:
    """(mosaic uint8 HxWx3, its tags among `classes`) for each image, in order."""
    unknown = sorted(set(classes) - set(TAGS))
    if unknown:
        raise ValueError(f"photo_mosaics tags its images with {TAGS}; {unknown} is not among them")
    photos = _photos()
    names = list(photos)
    rng = np.random.default_rng(seed)
    side = image_size_px // grid
    for _ in range(images):
        canvas = np.zeros((side * grid, side * grid, 3), dtype=np.float32)
        shown: set[str] = set()
        for row in range(grid):
            for col in range(grid):
                name = names[int(rng.integers(len(names)))]
                canvas[row * side:(row + 1) * side, col * side:(col + 1) * side] = _tile(photos[name], side, rng)
                shown.update(PHOTO_TAGS[name])
        yield canvas.round().astype(np.uint8), sorted(shown & set(classes))


def write_dataset(images: int, image_size_px: int, grid: int, seed: int, folder: Path,
                  classes: Sequence[str] = TAGS) -> dict[str, int]:
    """Write the mosaics under `folder/images/` and `folder/manifest.csv` (path, tags); returns how many images
    carry each tag."""
    from core.progress import Progress

    (folder / "images").mkdir(parents=True, exist_ok=True)
    rows, counts = [], dict.fromkeys(classes, 0)
    with Progress("synthesize", images, unit="image") as shown:
        for number, (pixels, tags) in enumerate(generate(images, image_size_px, grid, seed, classes)):
            name = f"images/{number:05d}.png"
            Image.fromarray(pixels).save(folder / name, format="PNG", optimize=False)
            rows.append({"path": name, "tags": TAG_SEPARATOR.join(tags)})
            for tag in tags:
                counts[tag] += 1
            shown.update(1)
    write_csv(folder / "manifest.csv", rows, ("path", "tags"))
    return counts
