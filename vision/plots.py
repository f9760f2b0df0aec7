"""Report figures: PNGs that are a pure function of their data (same data, same bytes)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from core.fsutil import publish_mode


def pyplot() -> Any:
    """matplotlib's pyplot on the file-only Agg backend (stages run headless)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    return plt


def save_figure(figure: Any, path: Path) -> None:
    """Write atomically, without matplotlib's version stamp, and free the figure."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".png")
    os.close(handle)
    publish_mode(tmp)
    try:
        figure.savefig(tmp, metadata={"Software": None})
        os.replace(tmp, path)
    finally:
        pyplot().close(figure)
        if os.path.exists(tmp):
            os.unlink(tmp)


DRAW_SIDE_PX = 320
"""Images with boxes are drawn at least this large (nearest-neighbour), so labels and thin boxes stay legible."""
CAPTION_PX = 14
THUMBNAIL_IN = 2.4
"""Side of one image in a grid, in inches at 100 dpi: 240 px, so a 10-pixel detail of a small image stays
visible once the HTML report scales the figure to its page width (about 1,000 px for four columns)."""


def file_caption(path: str | Path, width: int = 30) -> str:
    """An image's file name for a caption, its start cut (the end, with the frame number or id, stays)."""
    name = Path(path).name
    return name if len(name) <= width else "..." + name[-(width - 3):]


def image_grid(rows: list[tuple[str, list[np.ndarray], list[str]]], path: Path, title: str,
               cell_in: float = THUMBNAIL_IN) -> None:
    """A grid of uint8 RGB images: one row per (row label, images, per-image captions)."""
    plt = pyplot()
    columns = max((len(images) for _, images, _ in rows), default=1)
    caption_lines = max((c.count("\n") + 1 for _, _, captions in rows for c in captions if c), default=1)
    row_in = cell_in + 0.16 * caption_lines + 0.1
    figure, axes = plt.subplots(max(len(rows), 1), columns, figsize=(cell_in * columns + 1.2, row_in * len(rows) + 0.6),
                                dpi=100, squeeze=False)
    for axis in axes.flat:
        axis.set_axis_off()
    for r, (label, images, captions) in enumerate(rows):
        for c, image in enumerate(images):
            axis = axes[r][c]
            axis.imshow(image, interpolation="nearest")
            axis.set_title(captions[c] if c < len(captions) else "", fontsize=8)
        axes[r][0].set_axis_on()
        axes[r][0].set_xticks([])
        axes[r][0].set_yticks([])
        axes[r][0].set_ylabel(label, fontsize=8, rotation=0, ha="right", va="center")
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    save_figure(figure, path)


def draw_boxes(image: np.ndarray, layers: Sequence[tuple[np.ndarray, list[str], tuple[int, int, int]]]
               ) -> np.ndarray:
    """`image` enlarged to DRAW_SIDE_PX with each layer's boxes (xyxy, image pixels) and captions drawn."""
    height, width = image.shape[:2]
    zoom = max(1.0, DRAW_SIDE_PX / max(height, width))
    canvas = Image.fromarray(image).resize((round(width * zoom), round(height * zoom)), Image.Resampling.NEAREST)
    pen = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=CAPTION_PX)
    for layer, (boxes, captions, colour) in enumerate(layers):
        for box, caption in zip(np.asarray(boxes).reshape(-1, 4), captions, strict=True):
            x1, y1, x2, y2 = (float(v) * zoom for v in box)
            pen.rectangle((x1, y1, x2, y2), outline=colour, width=2)
            # the first layer (truth) is captioned under its box, the others above: both stay legible
            y = min(y2 + 1, canvas.height - CAPTION_PX - 1) if layer == 0 else max(0.0, y1 - CAPTION_PX - 2)
            pen.text((x1 + 1, y), caption, fill=colour, font=font, stroke_width=2, stroke_fill=(0, 0, 0))
    return np.asarray(canvas)
