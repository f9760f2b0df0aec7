"""Fog as albumentations' RandomFog draws it, the same pixels at a fraction of the cost.

RandomFog blends each of its particles (about 1,800 at 224 px) into the image by copying the whole image,
drawing one white disc and blending the whole image again (`add_fog`): 0.1 s per image here, three
quarters of a classifier's dependability stage and a large share of any training run that samples fog.
Written by hand because no library draws this fog faster, and the project's figures are defined by this
one: a pixel outside a particle's disc is blended with itself and keeps its value, so a pixel covered by k
discs ends at f^k(p), f(p) = round(255 a + (1 - a) p) with OpenCV's own rounding. The disc counts come from
one convolution per particle radius of the particles' centres with the disc OpenCV draws, f^k from a table
built with the same `cv2.addWeighted`. Bit-identical to `add_fog` (tests/vision/training/test_fog.py);
where the table's assumption does not hold (f's identity half not exact), it falls back to the library.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import albumentations as A
import cv2
import numpy as np
from albumentations.augmentations.pixel import functional as fpixel

WHITE = 255


class FastRandomFog(A.RandomFog):
    """`A.RandomFog` with the same random draws and the same output, drawn without a copy per particle."""

    def apply(self, img: np.ndarray, particle_positions: list[tuple[int, int]], radiuses: list[int],
              intensity: float, **params: Any) -> np.ndarray:
        if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:  # the library's own checks and casts
            return super().apply(img, particle_positions=particle_positions, radiuses=radiuses,
                                 intensity=intensity, **params)
        return add_fog(img, intensity, self.alpha_coef, particle_positions, radiuses)


def add_fog(img: np.ndarray, fog_intensity: float, alpha_coef: float,
            positions: Sequence[tuple[int, int]], radiuses: Sequence[int]) -> np.ndarray:
    """`fpixel.add_fog` on a uint8 image, computed from how many particle discs cover each pixel."""
    alpha = alpha_coef * fog_intensity
    covered = disc_counts(img.shape[:2], positions, radiuses)
    table = _blend_powers(alpha, int(covered.max(initial=0)))
    if table is None:
        return fpixel.add_fog(img, fog_intensity, alpha_coef, list(positions), list(radiuses))
    result = table[covered[..., None], img]
    blur = max(3, int(min(img.shape[:2]) // 30))
    blur += 1 - blur % 2
    return cv2.GaussianBlur(result, (blur, blur), 0)


def disc_counts(shape: tuple[int, int], positions: Sequence[tuple[int, int]],
                radiuses: Sequence[int]) -> np.ndarray:
    """How many of the filled discs `cv2.circle` would draw (centre, radius; centres may lie just outside
    the image) cover each pixel of an image of `shape` (height, width)."""
    height, width = shape
    counts = np.zeros((height, width), np.int32)
    if not len(positions):
        return counts
    centres = np.asarray(positions, np.int64).reshape(-1, 2)
    radii = np.asarray(radiuses, np.int64)
    pad = int(radii.max()) + 1
    for radius in np.unique(radii):
        xs, ys = centres[radii == radius].T + pad
        keep = (xs >= 0) & (ys >= 0) & (xs < width + 2 * pad) & (ys < height + 2 * pad)
        hits = np.zeros((height + 2 * pad, width + 2 * pad), np.float32)
        np.add.at(hits, (ys[keep], xs[keep]), 1.0)
        disc = np.zeros((2 * radius + 1, 2 * radius + 1), np.float32)
        cv2.circle(disc, (int(radius), int(radius)), int(radius), 1.0, thickness=-1)
        # filter2D correlates; the flipped disc makes it paint the disc around each centre. Large kernels go
        # through a DFT, whose float error is far below the 0.5 that rint removes.
        spread = cv2.filter2D(hits, -1, cv2.flip(disc, -1), borderType=cv2.BORDER_CONSTANT)
        counts += np.rint(spread[pad:pad + height, pad:pad + width]).astype(np.int32)
    return counts


def _blend_powers(alpha: float, most: int) -> np.ndarray | None:
    """Row k: every uint8 value after k blends with white (`cv2.addWeighted`, as `add_fog` calls it); None
    when blending a value with itself does not give it back, which the counting relies on."""
    values = np.arange(256, dtype=np.uint8).reshape(1, 256)
    if not np.array_equal(cv2.addWeighted(values, alpha, values, 1 - alpha, 0), values):
        return None
    white = np.full_like(values, WHITE)
    rows = [values]
    for _ in range(most):
        rows.append(cv2.addWeighted(white, alpha, rows[-1], 1 - alpha, 0))
    return np.concatenate(rows)
