"""One image decoder for ingest and the model server: size limits before decoding, and 8-bit output.

Why by hand: Pillow decodes whatever a header claims (a 22 KB PNG can declare 13,370 x 13,370 pixels and
take a gigabyte to decode) and its own bomb check is a process-wide setting with a fixed factor. Here the
header's size is checked against the caller's limit before any pixel is decoded. And Pillow's
`convert("L")` clips 16- and 32-bit images instead of rescaling them (a 16-bit grey PNG becomes black and
white); `to_8bit` rescales by the data's bit depth, so ingest and serving see the same pixels.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

# Every decode in this project goes through `open_image`, which checks the size against the caller's limit
# before pixels are read; Pillow's global check (a warning, then an error at twice its default) would
# otherwise refuse or accept images regardless of that limit.
Image.MAX_IMAGE_PIXELS = None

DEFAULT_MAX_PIXELS = 40_000_000
"""40 megapixels: above the largest common camera sensors (8K video is 33 MP) and below what decodes
within a predictor's memory limit (a 40 MP RGB image is 120 MB as pixels)."""
DEFAULT_MAX_SIDE_PX = 16_384
"""Longest side accepted: a panorama may be long, a 1 x 40,000,000 strip is not an image to classify."""

GREY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F", "La"}


class BadImage(ValueError):
    """Bytes or a file that cannot be used as an image; the message is the reason shown to the user."""


class ImageTooLarge(BadImage):
    """The header declares more pixels than the limit allows: refused before decoding."""


@dataclass(frozen=True)
class PixelLimits:
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_side_px: int = DEFAULT_MAX_SIDE_PX

    def check(self, width: int, height: int) -> None:
        if width < 1 or height < 1:
            raise BadImage(f"image has no pixels ({width}x{height})")
        if width * height > self.max_pixels or max(width, height) > self.max_side_px:
            raise ImageTooLarge(f"image is {width}x{height} ({width * height / 1e6:.1f} megapixels); the limit is "
                                f"{self.max_pixels / 1e6:g} megapixels and {self.max_side_px} px per side")


def open_image(source: bytes | Path, limits: PixelLimits) -> Image.Image:
    """Decode the first frame of an encoded image after checking its declared size; corrupt, truncated or
    oversized input raises BadImage with the reason. The result is in Pillow's own mode (see `to_8bit`)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            if isinstance(source, Path):
                with Image.open(source) as probe:
                    limits.check(*probe.size)
                    probe.verify()  # catches corrupt chunk CRCs that a lazy open would miss
            with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as image:
                limits.check(*image.size)
                image.load()  # catches truncation, which verify() does not
                return image.copy()
    except BadImage:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError, MemoryError,
            Image.DecompressionBombError) as exc:
        raise BadImage(f"not a decodable image ({type(exc).__name__}: {_short(exc)})") from None


def declared_size(source: bytes) -> tuple[int, int]:
    """(width, height) from the header alone, without decoding a pixel."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(source)) as image:
                return image.size
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        raise BadImage(f"not a decodable image ({type(exc).__name__}: {_short(exc)})") from None


def to_8bit(image: Image.Image) -> Image.Image:
    """An image in mode 'L' (grey) or 'RGB', rescaling deeper integer and float pixels instead of clipping.

    16-bit integers map 0..65535 to 0..255; 32-bit integers do too when they fit in 16 bits (Pillow opens
    some 16-bit files as 'I'), else their own min..max; floats in [0, 1] scale by 255, else min..max.
    """
    if image.mode in ("L", "RGB"):
        return image
    if image.mode.startswith("I") or image.mode == "F":
        return Image.fromarray(_rescale(np.asarray(image)), mode="L")
    if image.mode in GREY_MODES:
        return image.convert("L")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    return image.convert("RGB")


def decode_rgb(source: bytes | Path, limits: PixelLimits) -> Image.Image:
    """Encoded image -> 8-bit RGB, the form a model takes."""
    return to_8bit(open_image(source, limits)).convert("RGB")


def _rescale(pixels: np.ndarray) -> np.ndarray:
    values = pixels.astype(np.float64)
    if pixels.dtype.kind in "iu":
        low, high = float(values.min()), float(values.max())
        if low >= 0 and high <= 65535:
            scaled = values / 257.0 if (pixels.dtype.itemsize >= 2 or high > 255) else values
        else:
            scaled = (values - low) / max(high - low, 1.0) * 255.0
    else:
        finite = values[np.isfinite(values)]
        low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        values = np.nan_to_num(values, nan=low, posinf=high, neginf=low)
        scaled = values * 255.0 if (low >= 0.0 and high <= 1.0) else (values - low) / max(high - low, 1e-12) * 255.0
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def _short(exc: BaseException, limit: int = 200) -> str:
    """An exception's message cut to `limit` characters: a decoder error can quote the input."""
    text = str(exc)
    return text if len(text) <= limit else text[:limit] + "..."
