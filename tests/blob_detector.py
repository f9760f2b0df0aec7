"""A detector with known answers for sliced-inference tests: in each input it "finds" the box around all pixels
whose red channel exceeds 200, exactly, as raw FCOS-style outputs (one level of stride 8, one class). Whatever is
too small to keep a bright pixel after letterboxing is missed, as a real detector misses tiny objects."""

from __future__ import annotations

import numpy as np

INPUT_WH = (32, 32)
STRIDES = (8,)
CELLS = (INPUT_WH[0] // STRIDES[0]) * (INPUT_WH[1] // STRIDES[0])
BRIGHT = 200
SURE, UNSURE = 8.0, -20.0


def blob_outputs(images: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """uint8 N x 32 x 32 x 3 -> (class logits [N, 16, 1], regression [N, 16, 4], centerness [N, 16],
    features [N, 2])."""
    count, stride, columns = len(images), STRIDES[0], INPUT_WH[0] // STRIDES[0]
    logits = np.full((count, CELLS, 1), UNSURE, np.float32)
    regression = np.zeros((count, CELLS, 4), np.float32)
    centerness = np.full((count, CELLS), SURE, np.float32)
    for n, image in enumerate(images):
        rows, cols = np.nonzero(image[..., 0] > BRIGHT)
        if not len(rows):
            continue
        x1, y1, x2, y2 = cols.min(), rows.min(), cols.max() + 1, rows.max() + 1
        j = int(np.clip(round((x1 + x2) / 2 / stride), 0, columns - 1))
        i = int(np.clip(round((y1 + y2) / 2 / stride), 0, INPUT_WH[1] // stride - 1))
        cx, cy = j * stride, i * stride
        logits[n, i * columns + j, 0] = SURE
        regression[n, i * columns + j] = ((cx - x1) / stride, (cy - y1) / stride, (x2 - cx) / stride,
                                          (y2 - cy) / stride)
    features = np.stack([images.mean(axis=(1, 2, 3)), images.std(axis=(1, 2, 3))], axis=1).astype(np.float32)
    return logits, regression, centerness, features


def scene(width: int, height: int, squares: list[tuple[int, int, int]]) -> np.ndarray:
    """A dark grey image with white squares (left, top, side)."""
    image = np.full((height, width, 3), 60, np.uint8)
    for left, top, side in squares:
        image[top:top + side, left:left + side] = 255
    return image
