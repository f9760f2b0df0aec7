"""One classifier image per box of a detection data set: what a detect-then-classify cascade's classifier sees.

The crop is the box grown by `padding` of its own width and height on every side (a classifier on tight crops
loses the context a detector's slightly-off boxes cut away), clipped to the image: runtime.windows' window, so
the server crops a detection as the classifier's training crops were cut. A box whose crop is below
`min_size_px` on either side cannot be classified any better than it was detected: it is quarantined with its
reason, as a bad image is. Every crop of one source image shares that image's group, so crops of one photo never
land in different splits. Written here because no library crops COCO-style box tables into a labelled image set.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from runtime.windows import crop_window
from vision.data.imageio import PixelLimits, UnreadableImage, decode_file


@dataclass(frozen=True)
class CropRule:
    padding: float = 0.1
    """Share of the box's width (height) added left and right (above and below)."""
    min_size_px: int = 16
    """Crops narrower or shorter than this are quarantined."""


@dataclass(frozen=True)
class BoxRow:
    """One box of a detection data set: its image (relative to the image root), label and xyxy pixels."""

    path: str
    label: str
    x1: float
    y1: float
    x2: float
    y2: float


@dataclass(frozen=True)
class Crop:
    label: str
    origin: str
    """`<image path>#box <n>`: the box's place among its image's boxes, for reports."""
    group: str
    """The source image: every crop of it lands in one split."""
    read: Callable[[], Image.Image]


def crops(rows: list[BoxRow], image_root: Path, rule: CropRule, limits: PixelLimits | None = None
          ) -> Iterator[Crop]:
    """A crop per box, in the rows' order; reading a crop decodes its image (once per call: a classifier's
    ingest reads every crop exactly once)."""
    limits = limits or PixelLimits()
    seen: dict[str, int] = {}
    for row in rows:
        number = seen.get(row.path, 0)
        seen[row.path] = number + 1
        yield Crop(row.label, f"{row.path}#box {number}", row.path,
                   lambda row=row: _read_crop(image_root / row.path, row, rule, limits))


def _read_crop(path: Path, box: BoxRow, rule: CropRule, limits: PixelLimits) -> Image.Image:
    image = decode_file(path, limits)
    left, top, right, bottom = crop_window((box.x1, box.y1, box.x2, box.y2), image.width, image.height,
                                           rule.padding)
    if right - left < rule.min_size_px or bottom - top < rule.min_size_px:
        raise UnreadableImage(f"crop of {right - left}x{bottom - top} px is below min_size_px {rule.min_size_px}")
    return image.convert("RGB").crop((left, top, right, bottom))
