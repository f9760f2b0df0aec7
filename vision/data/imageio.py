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
from PIL import Image

from runtime.images import BadImage, PixelLimits, open_image, to_8bit

UnreadableImage = BadImage
"""The file is not a usable image; the message is the reason shown in the quarantine report."""


class RefusedFile(BadImage):
    """A file that must not be opened at all (a link that dangles or leaves the repository)."""


@dataclass(frozen=True)
class CanonicalImage:
    png: bytes
    sha256: str
    width: int
    height: int
    mode: str


def decode_file(path: Path, limits: PixelLimits | None = None) -> Image.Image:
    """Open and fully decode an image file through the shared decoder (size checked before decoding);
    truncated, corrupt or oversized files raise UnreadableImage."""
    return open_image(path, limits or PixelLimits())


def canonicalize(image: Image.Image) -> CanonicalImage:
    """8-bit grey or RGB (deeper images rescaled, not clipped) as metadata-free PNG bytes."""
    image = to_8bit(image)
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
        return np.array(rgb, dtype=np.uint8)  # a writable copy: torch reads it without a warning
