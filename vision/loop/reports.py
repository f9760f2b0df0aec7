"""The queue as people will see it: each image with the annotator's guesses (boxes drawn for a detector) and
how uncertain the model was, in queue order."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from vision.data.labelstudio import Guess
from vision.plots import draw_boxes, file_caption, image_grid

COLUMNS = 8
MOST_SHOWN = 32
GUESS_COLOUR = (255, 64, 64)


MOST_GUESSES_SHOWN = 3
"""A tagger guesses several tags per image; the caption names the first few."""


def queue_gallery(queue: list[tuple[Path, list[Guess], float]], path: Path, title: str) -> None:
    cells = []
    for png, guesses, uncertainty in queue[:MOST_SHOWN]:
        with Image.open(png) as image:
            rgb = np.asarray(image.convert("RGB"))
        boxes = [g for g in guesses if g.box is not None]
        if boxes:
            rgb = draw_boxes(rgb, [(np.array([g.box for g in boxes]), [f"{g.label} {g.score:.2f}" for g in boxes],
                                    GUESS_COLOUR)])
            caption = f"u {uncertainty:.3f}"
        else:
            shown = ", ".join(f"{g.label} {g.score:.2f}" for g in guesses[:MOST_GUESSES_SHOWN])
            caption = f"{shown or 'no guess'}\nu {uncertainty:.3f}"
        cells.append((rgb, f"{file_caption(png, 18)}\n{caption}"))
    rows = [(f"{start + 1}-{start + len(cells[start:start + COLUMNS])}",
             [c[0] for c in cells[start:start + COLUMNS]], [c[1] for c in cells[start:start + COLUMNS]])
            for start in range(0, len(cells), COLUMNS)]
    if not rows:
        from vision.plots import pyplot, save_figure

        figure, axis = pyplot().subplots(figsize=(4, 1.2), dpi=100)
        axis.set_axis_off()
        axis.text(0.5, 0.5, "the queue is empty: nothing left in the pool to label", ha="center", va="center")
        figure.suptitle(title, fontsize=9)
        save_figure(figure, path)
        return
    image_grid(rows, path, title)
