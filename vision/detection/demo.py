"""The embedded detection data set, built from real pixels only: scikit-learn's 1,797 handwritten digits
(8 x 8 scans) pasted onto crops of the real photographs that ship with scikit-image and scikit-learn.

No detection data set ships inside a package, so this one is made: each digit's ink (its grey levels as
opacity) is scaled to 16-64 px and painted in a colour that contrasts with the photo beneath it, at a free
position (digits do not touch). Its box is exact: the extent of the pixels whose opacity reaches
INK_THRESHOLD. Every scan is pasted at most once until all have been used, and everything follows one
seeded generator: the same settings give the same bytes. Written as COCO (`annotations.json` + `images/`),
so it enters the pipeline through the same `coco` source a user's data does.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from core.spec.data import DigitsOnPhotos
from vision.detection.formats.coco import CocoImage, write

BACKGROUNDS = ("astronaut", "camera", "chelsea", "coffee", "rocket", "coins", "grass", "gravel", "brick")
"""scikit-image photographs that ship inside the wheel, plus scikit-learn's two sample photos."""
INK_THRESHOLD = 0.3
"""A pixel belongs to the digit (and its box) where the scaled ink's opacity reaches this."""
PLACEMENT_TRIES = 50
CLASSES = [str(d) for d in range(10)]


@dataclass(frozen=True)
class Pasted:
    label: str
    box: tuple[int, int, int, int]


def _photos() -> list[np.ndarray]:
    from skimage import data
    from sklearn.datasets import load_sample_images

    photos = [getattr(data, name)() for name in BACKGROUNDS] + list(load_sample_images().images)
    return [np.ascontiguousarray(np.stack([p] * 3, -1) if p.ndim == 2 else p[..., :3]).astype(np.uint8)
            for p in photos]


def _background(photo: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    height, width = photo.shape[:2]
    side = int(rng.integers(min(height, width) // 3, min(height, width) + 1))
    top, left = int(rng.integers(0, height - side + 1)), int(rng.integers(0, width - side + 1))
    crop = Image.fromarray(photo[top:top + side, left:left + side]).resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(crop, dtype=np.float32)


def _ink(scan: np.ndarray, side: int) -> np.ndarray:
    """The 8 x 8 scan's ink (0..16) as opacity in [0, 1] at side x side px."""
    grey = Image.fromarray((scan * (255.0 / 16.0)).round().astype(np.uint8))
    return np.asarray(grey.resize((side, side), Image.Resampling.BICUBIC), dtype=np.float32).clip(0, 255) / 255.0


def _paste(canvas: np.ndarray, opacity: np.ndarray, top: int, left: int, rng: np.random.Generator
           ) -> tuple[int, int, int, int]:
    """Paint the ink in a colour far from the background's mean brightness; return its exact box (xyxy)."""
    side = opacity.shape[0]
    region = canvas[top:top + side, left:left + side]
    bright = region.mean() > 110
    colour = rng.uniform(0, 60, 3) if bright else rng.uniform(190, 255, 3)
    region[...] = region * (1 - opacity[..., None]) + colour * opacity[..., None]
    rows, cols = np.nonzero(opacity >= INK_THRESHOLD)
    return left + int(cols.min()), top + int(rows.min()), left + int(cols.max()) + 1, top + int(rows.max()) + 1


def _free(box: tuple[int, int, int, int], taken: list[tuple[int, int, int, int]], margin: int = 2) -> bool:
    x1, y1, x2, y2 = box
    return all(x2 + margin <= a or b + margin <= x1 or y2 + margin <= c or d + margin <= y1
               for a, c, b, d in taken)


def generate(settings: DigitsOnPhotos, seed: int, classes: Sequence[str] = CLASSES
             ) -> Iterator[tuple[np.ndarray, list[Pasted]]]:
    """(image uint8 HxWx3, its digits) for each image, in order, the labelled images then the pool's; only the
    digits named in `classes` are pasted (a project may detect some of the ten)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    rng = np.random.default_rng(seed)
    photos = _photos()
    wanted_digits = np.flatnonzero(np.isin(digits.target.astype(str), list(classes)))
    if not len(wanted_digits):
        raise ValueError(f"digits_on_photos pastes the digits '0'..'9'; none of them is in classes {list(classes)}")
    order = wanted_digits[rng.permutation(len(wanted_digits))]
    used = 0
    size = settings.image_size_px
    low, high = settings.digit_size_px
    for _ in range(settings.images + settings.pool_images):
        canvas = _background(photos[int(rng.integers(len(photos)))], size, rng)
        wanted = int(rng.integers(settings.digits_per_image[0], settings.digits_per_image[1] + 1))
        placed: list[Pasted] = []
        spans: list[tuple[int, int, int, int]] = []
        for _ in range(wanted):
            side = int(rng.integers(low, min(high, size) + 1))
            for _ in range(PLACEMENT_TRIES):
                top, left = (int(v) for v in rng.integers(0, size - side + 1, 2))
                if _free((left, top, left + side, top + side), spans):
                    break
            else:
                continue  # the image is full: fewer digits than drawn
            index = int(order[used % len(order)])
            used += 1
            box = _paste(canvas, _ink(digits.images[index], side), top, left, rng)
            spans.append((left, top, left + side, top + side))
            placed.append(Pasted(str(digits.target[index]), box))
        yield canvas.round().clip(0, 255).astype(np.uint8), placed


def write_dataset(settings: DigitsOnPhotos, seed: int, folder: Path, classes: Sequence[str] = CLASSES) -> int:
    """Write the data set as COCO under `folder` (and the unlabelled pool's images under `folder/pool`); returns
    the number of labelled boxes."""
    from core.progress import Progress

    (folder / "images").mkdir(parents=True, exist_ok=True)
    if settings.pool_images:
        (folder / "pool").mkdir()
    records = []
    with Progress("synthesize", settings.images + settings.pool_images, unit="image") as shown:
        for number, (pixels, placed) in enumerate(generate(settings, seed, classes)):
            if number >= settings.images:  # the pool: pixels only, its digits are for people to label
                Image.fromarray(pixels).save(folder / f"pool/{number:05d}.png", format="PNG", optimize=False)
            else:
                name = f"images/{number:05d}.png"
                Image.fromarray(pixels).save(folder / name, format="PNG", optimize=False)
                records.append(CocoImage(name, pixels.shape[1], pixels.shape[0],
                                         tuple((p.label, *map(float, p.box)) for p in placed)))
            shown.update(1)
    write(folder / "annotations.json", records, [c for c in CLASSES if c in classes])
    return sum(len(r.boxes) for r in records)
