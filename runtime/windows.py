"""The window a cascade's classifier sees around a detected box: the crops source cuts training crops with it and
the cascade (evaluation and the server) cuts a detection's crop with it, so the two are the same pixels. Kept apart
from runtime.cascade so a change to how a cascade answers does not re-run every crops source's ingest."""

from __future__ import annotations

import math


def crop_window(box: tuple[float, float, float, float], width: int, height: int, padding: float
                ) -> tuple[int, int, int, int]:
    """The box grown by `padding` of its width (height) on each side, in whole pixels inside the image (left, top,
    right, bottom; right and bottom exclusive), never empty."""
    x1, y1, x2, y2 = box
    grow_x, grow_y = padding * (x2 - x1), padding * (y2 - y1)
    left = min(max(0, math.floor(x1 - grow_x)), width - 1)
    top = min(max(0, math.floor(y1 - grow_y)), height - 1)
    right = max(left + 1, min(width, math.ceil(x2 + grow_x)))
    bottom = max(top + 1, min(height, math.ceil(y2 + grow_y)))
    return left, top, right, bottom
