"""Image decoding and the canonical on-disk form every later stage reads.

Canonical = PNG, mode 'L' (grey) or 'RGB', no metadata: one image always gives
the same bytes, so its sha256 identifies its pixels and DVC caches stay stable.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError


class UnreadableImage(Exception):
    """The file is not a decodable image; the message is the reason shown in the quarantine report."""


@dataclass(frozen=True)
class CanonicalImage:
    png: bytes
    sha256: str
    width: int
    height: int
    mode: str


def decode_file(path: Path) -> Image.Image:
    """Open and fully decode an image file; truncated or corrupt files raise UnreadableImage."""
    try:
        with Image.open(path) as probe:
            probe.verify()  # catches corrupt chunk CRCs that a lazy open would miss
        with Image.open(path) as image:
            image.load()  # catches truncation, which verify() does not
            return image.copy()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise UnreadableImage(f"{type(exc).__name__}: {exc}") from None


def canonicalize(image: Image.Image) -> CanonicalImage:
    if image.mode not in ("L", "RGB"):
        grey = image.mode in ("1", "I", "I;16", "F", "LA")
        image = image.convert("L" if grey else "RGB")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=False)
    png = buffer.getvalue()
    return CanonicalImage(png, hashlib.sha256(png).hexdigest(), image.width, image.height, image.mode)


def from_array(pixels: np.ndarray) -> Image.Image:
    """A uint8 HxW (grey) or HxWx3 (RGB) array as an image."""
    return Image.fromarray(np.ascontiguousarray(pixels, dtype=np.uint8))


def load_rgb(path: Path, size_px: int) -> np.ndarray:
    """A canonical image as an RGB uint8 array resized to size x size (bicubic), as the model sees it."""
    with Image.open(path) as image:
        rgb = image.convert("RGB")
        if rgb.size != (size_px, size_px):
            rgb = rgb.resize((size_px, size_px), Image.Resampling.BICUBIC)
        return np.asarray(rgb, dtype=np.uint8)
