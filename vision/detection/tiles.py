"""Training on tiles of large images: each image of a split cut into the windows sliced inference uses
(runtime.detections.Tiling), its boxes cut to each window by albumentations' own crop and visibility rule, the
tiles that hold a box all kept and the empty ones sampled with the seed. Tiles come from the images of one
split, so the tiles of a source image never straddle train, validation and test."""

from __future__ import annotations

from dataclasses import dataclass

import albumentations as A
import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from runtime.detections import Letterbox, Tiling
from vision.detection.augment import box_params
from vision.detection.data import DetectionSplit, augmented, letterbox, read_rgb


@dataclass(frozen=True)
class TileSampling:
    """The spec's `detection.tiling` keys that only training reads."""

    min_visibility: float = 0.5
    negatives_per_positive: float = 0.5


@dataclass(frozen=True)
class Tile:
    image: int
    """Index of the source image in its split."""
    window: tuple[int, int, int, int]
    """xyxy in the source image's pixels (the whole image for a whole-image view)."""


def visible_share(boxes: np.ndarray, window: tuple[int, int, int, int]) -> np.ndarray:
    """Share of each box's area inside the window (albumentations' visibility: area after the crop over area
    before; a box of no area counts as not visible)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    x1, y1, x2, y2 = window
    inside = np.clip(np.minimum(boxes[:, 2:], (x2, y2)) - np.maximum(boxes[:, :2], (x1, y1)), 0, None).prod(axis=1)
    area = np.clip(boxes[:, 2:] - boxes[:, :2], 0, None).prod(axis=1)
    return np.where(area > 0, inside / np.where(area > 0, area, 1), 0.0)


def plan_tiles(split: DetectionSplit, tiling: Tiling, sampling: TileSampling, seed: int) -> list[Tile]:
    """Every window that holds a box (at least `min_visibility` of it), empty windows sampled at
    `negatives_per_positive` per such window (at least one tile per split), and a whole-image view of each image
    when the tiling detects on whole images too. In image order, windows row by row."""
    positives: list[Tile] = []
    negatives: list[Tile] = []
    for index, path in enumerate(split.paths):
        with Image.open(split.root / path) as image:
            width, height = image.size
        for window in tiling.windows(width, height):
            tile = Tile(index, tuple(int(v) for v in window))  # type: ignore[arg-type]
            holds = (visible_share(split.boxes[index], tile.window) >= sampling.min_visibility).any()
            (positives if holds else negatives).append(tile)
        if tiling.whole_image:
            positives.append(Tile(index, (0, 0, width, height)))
    wanted = min(len(negatives), round(sampling.negatives_per_positive * len(positives)))
    if not positives and not wanted:
        wanted = min(len(negatives), 1)
    drawn = np.random.default_rng(seed).choice(len(negatives), size=wanted, replace=False) if wanted else []
    kept = positives + [negatives[i] for i in sorted(int(i) for i in drawn)]
    return sorted(kept, key=lambda t: (t.image, t.window[1], t.window[0], t.window[2]))


class TiledImages(Dataset):
    """(input tensor, target dict with boxes in input pixels, letterbox of the tile) per tile: the window cut
    with its boxes (albumentations' Crop; a box less than `min_visibility` inside is dropped), letterboxed into
    the input, then augmented as whole images are."""

    def __init__(self, data: DetectionSplit, tiles: list[Tile], input_wh: tuple[int, int], min_visibility: float,
                 pipeline: A.Compose | None = None):
        self.data, self.tiles, self.input_wh, self.pipeline = data, tiles, input_wh, pipeline
        self.params = box_params(min_visibility)

    def __len__(self) -> int:
        return len(self.tiles)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, torch.Tensor], Letterbox]:
        tile = self.tiles[index]
        x1, y1, x2, y2 = tile.window
        cut = A.Compose([A.Crop(x_min=x1, y_min=y1, x_max=x2, y_max=y2)], bbox_params=self.params)(
            image=read_rgb(self.data.root / self.data.paths[tile.image]), bboxes=self.data.boxes[tile.image],
            labels=self.data.labels[tile.image])
        image, fit = letterbox(cut["image"], self.input_wh)
        return augmented(self.pipeline, image, fit.to_input(np.asarray(cut["bboxes"], np.float32).reshape(-1, 4)),
                         np.asarray(cut["labels"], dtype=np.int64), fit)
