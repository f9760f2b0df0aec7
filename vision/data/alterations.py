"""What a real duplicate looks like: light alterations of an image, the calibration set of duplicate removal.

A copy of a photo that reached a data set twice was usually re-encoded, rescaled or trimmed on the way. Embedding
such altered copies of the project's own images tells how similar a true duplicate is on this data, which a fixed
threshold cannot know (textures of one material all look alike to an ImageNet embedder; digits do not).
"""

from __future__ import annotations

import io
from collections.abc import Callable

from PIL import Image

REENCODE_QUALITY = 90
"""JPEG quality of a re-encoded copy: what photo sites and messengers commonly write."""
RESIZE_SCALE = 0.9
"""A rescaled copy: shrunk to this share of each side and brought back."""
CROP_SHARE = 0.02
"""A trimmed copy: this share of each side cut away (at least one pixel)."""


def reencoded(image: Image.Image) -> Image.Image:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=REENCODE_QUALITY)
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return decoded.convert("RGB")


def resized(image: Image.Image) -> Image.Image:
    width, height = image.size
    small = image.resize((max(1, round(width * RESIZE_SCALE)), max(1, round(height * RESIZE_SCALE))),
                         Image.Resampling.BICUBIC)
    return small.resize((width, height), Image.Resampling.BICUBIC)


def cropped(image: Image.Image) -> Image.Image:
    width, height = image.size
    dx, dy = max(1, round(width * CROP_SHARE)), max(1, round(height * CROP_SHARE))
    if width <= 2 * dx or height <= 2 * dy:
        return image.copy()
    return image.crop((dx, dy, width - dx, height - dy))


ALTERATIONS: dict[str, Callable[[Image.Image], Image.Image]] = {
    "reencoded": reencoded,
    "resized": resized,
    "cropped": cropped,
}
"""Name -> alteration, in the order reports list them."""
