"""Report figures: PNGs that are a pure function of their data (same data, same bytes)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

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


def image_grid(rows: list[tuple[str, list[np.ndarray], list[str]]], path: Path, title: str) -> None:
    """A grid of uint8 RGB images: one row per (row label, images, per-image captions)."""
    plt = pyplot()
    columns = max((len(images) for _, images, _ in rows), default=1)
    figure, axes = plt.subplots(max(len(rows), 1), columns, figsize=(1.3 * columns + 1.2, 1.45 * len(rows) + 0.6),
                                dpi=100, squeeze=False)
    for axis in axes.flat:
        axis.set_axis_off()
    for r, (label, images, captions) in enumerate(rows):
        for c, image in enumerate(images):
            axis = axes[r][c]
            axis.imshow(image, interpolation="nearest")
            axis.set_title(captions[c] if c < len(captions) else "", fontsize=7)
        axes[r][0].set_axis_on()
        axes[r][0].set_xticks([])
        axes[r][0].set_yticks([])
        axes[r][0].set_ylabel(label, fontsize=8, rotation=0, ha="right", va="center")
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    save_figure(figure, path)
