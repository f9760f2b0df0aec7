"""From the detector's raw tensors to boxes: location grid, box decoding, score threshold, class-wise NMS and
the letterbox that maps boxes back to the original image. numpy only.

One module for everything that turns network outputs into detections, so evaluation, export's parity checks
and the model server (which has no torch) cannot drift apart. It mirrors torchvision's FCOS exactly: a
location of level with stride s sits at (j * s, i * s) and stands for an s x s box around it; the regression
(l, t, r, b) is in units of s (BoxLinearCoder with normalize_by_size); the score is sqrt(sigmoid(class) *
sigmoid(centerness)). NMS is written here because the server cannot import torchvision's.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Letterbox:
    """How an image of (width, height) was fitted into the network input: scaled by `scale`, then padded on the
    right and bottom. Boxes map back by dividing by `scale`."""

    scale: float
    width: int
    height: int
    """The original image's size (boxes are clipped to it)."""

    @staticmethod
    def fit(width: int, height: int, input_wh: tuple[int, int]) -> Letterbox:
        return Letterbox(min(input_wh[0] / width, input_wh[1] / height), width, height)

    def scaled_size(self) -> tuple[int, int]:
        """(width, height) of the resized image inside the input, at least 1 px each."""
        return max(1, round(self.width * self.scale)), max(1, round(self.height * self.scale))

    def to_input(self, boxes: np.ndarray) -> np.ndarray:
        return np.asarray(boxes, dtype=np.float32).reshape(-1, 4) * np.float32(self.scale)

    def to_image(self, boxes: np.ndarray) -> np.ndarray:
        out = np.asarray(boxes, dtype=np.float32).reshape(-1, 4) / np.float32(self.scale)
        np.clip(out[:, 0::2], 0, self.width, out=out[:, 0::2])
        np.clip(out[:, 1::2], 0, self.height, out=out[:, 1::2])
        return out


def level_shapes(input_wh: tuple[int, int], strides: tuple[int, ...]) -> list[tuple[int, int]]:
    """(rows, columns) of each level's grid: the input divided by the stride, rounded up (convolutions with
    padding round up)."""
    width, height = input_wh
    return [(-(-height // s), -(-width // s)) for s in strides]


def locations(input_wh: tuple[int, int], strides: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(centres [A, 2] as x, y in input pixels; stride of each location [A]) for all levels, row-major per level,
    in the order the network's flattened outputs use."""
    centres, sizes = [], []
    for (rows, cols), stride in zip(level_shapes(input_wh, strides), strides, strict=True):
        ys, xs = np.meshgrid(np.arange(rows, dtype=np.float32) * stride, np.arange(cols, dtype=np.float32) * stride,
                             indexing="ij")
        centres.append(np.stack([xs.ravel(), ys.ravel()], axis=1))
        sizes.append(np.full(rows * cols, stride, dtype=np.float32))
    return np.concatenate(centres), np.concatenate(sizes)


def anchor_boxes(input_wh: tuple[int, int], strides: tuple[int, ...]) -> np.ndarray:
    """Each location's s x s box, [A, 4] xyxy: what torchvision's FCOS matching and box coder work from."""
    centres, sizes = locations(input_wh, strides)
    half = sizes[:, None] / 2
    return np.concatenate([centres - half, centres + half], axis=1)


def decode_boxes(regression: np.ndarray, input_wh: tuple[int, int], strides: tuple[int, ...]) -> np.ndarray:
    """[..., A, 4] (l, t, r, b) in strides -> [..., A, 4] xyxy in input pixels."""
    centres, sizes = locations(input_wh, strides)
    reg = np.asarray(regression, dtype=np.float32) * sizes[:, None]
    return np.concatenate([centres - reg[..., :2], centres + reg[..., 2:]], axis=-1)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(x, dtype=np.float32)))  # overflow-free form


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in `a` [N, 4] with every box in `b` [M, 4] (xyxy) -> [N, M]."""
    a, b = np.asarray(a, dtype=np.float64).reshape(-1, 4), np.asarray(b, dtype=np.float64).reshape(-1, 4)
    top_left = np.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(bottom_right - top_left, 0, None), axis=2)
    union = _areas(a)[:, None] + _areas(b)[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def _areas(boxes: np.ndarray) -> np.ndarray:
    """[N] areas of float64 xyxy boxes (an inverted box has none)."""
    sides = np.maximum(boxes[:, 2:] - boxes[:, :2], 0.0)
    return sides[:, 0] * sides[:, 1]


def nms(boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray, iou: float, limit: int) -> np.ndarray:
    """Indices kept by class-wise greedy NMS, best score first (ties: lower index first), at most `limit`.

    Greedy NMS as torchvision's batched_nms defines it: the best remaining box is kept and every remaining box of
    its class overlapping it by `iou` or more is dropped. Each class keeps its remaining boxes as arrays that
    shrink with every kept box, so a detector's thousands of low-score candidates cost one vectorised pass per
    kept box (the boxes were once dropped one Python step at a time: a third of a detector's dependability
    stage)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    labels = np.asarray(labels)
    order = np.lexsort((np.arange(len(scores)), -np.asarray(scores, dtype=np.float64)))
    classes = [_Remaining(boxes, order[labels[order] == label]) for label in np.unique(labels)]
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    heads = [(rank[c.head], i) for i, c in enumerate(classes) if c]
    heapq.heapify(heads)
    kept: list[int] = []
    while heads and len(kept) < limit:
        _, i = heapq.heappop(heads)
        kept.append(classes[i].keep_head(iou))
        if classes[i]:
            heapq.heappush(heads, (rank[classes[i].head], i))
    return np.asarray(kept, dtype=np.int64)


class _Remaining:
    """One class's boxes not yet kept or dropped, best first, as contiguous coordinate columns."""

    def __init__(self, boxes: np.ndarray, indices: np.ndarray):
        self.indices = indices
        self.x1, self.y1, self.x2, self.y2 = (np.ascontiguousarray(boxes[indices, k]) for k in range(4))
        self.areas = _areas(boxes[indices])

    def __bool__(self) -> bool:
        return len(self.indices) > 0

    @property
    def head(self) -> int:
        return int(self.indices[0])

    def keep_head(self, iou: float) -> int:
        """Keep the best box; drop the rest that overlap it by `iou` or more (the IoU as `iou_matrix` computes
        it, operation for operation, so both agree to the bit)."""
        width = np.maximum(np.minimum(self.x2[0], self.x2[1:]) - np.maximum(self.x1[0], self.x1[1:]), 0.0)
        height = np.maximum(np.minimum(self.y2[0], self.y2[1:]) - np.maximum(self.y1[0], self.y1[1:]), 0.0)
        inter = width * height
        union = self.areas[0] + self.areas[1:] - inter
        overlap = np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)
        stay = ~(overlap >= iou)  # not `< iou`: a NaN overlap drops nothing
        kept = self.head
        self.indices, self.areas = self.indices[1:][stay], self.areas[1:][stay]
        self.x1, self.y1, self.x2, self.y2 = (c[1:][stay] for c in (self.x1, self.y1, self.x2, self.y2))
        return kept


@dataclass(frozen=True)
class Tiling:
    """How a large image is cut and merged (the spec's `detection.tiling`)."""

    tile_wh: tuple[int, int]
    """Each tile's (width, height) in image pixels; it is letterboxed into the network input like an image."""
    overlap: float = 0.2
    """Share of a tile's side shared with its neighbour: an object smaller than this is whole in some tile."""
    whole_image: bool = False
    """Also run the whole image letterboxed into the input, for objects larger than a tile."""
    merge_threshold: float = 0.5
    """A detection its tile's edge cut is dropped when this share of it lies inside a kept detection of its class
    (the part of an object seen whole in a neighbouring tile)."""

    def to_dict(self) -> dict[str, object]:
        return {"tile_wh": list(self.tile_wh), "overlap": self.overlap, "whole_image": self.whole_image,
                "merge_threshold": self.merge_threshold}

    @classmethod
    def from_dict(cls, raw: dict) -> Tiling:
        return cls((int(raw["tile_wh"][0]), int(raw["tile_wh"][1])), float(raw["overlap"]),
                   bool(raw["whole_image"]), float(raw["merge_threshold"]))

    def windows(self, width: int, height: int) -> np.ndarray:
        """[T, 4] int64 xyxy windows covering the image, row by row; a side shorter than the tile is one window."""
        xs = _starts(width, self.tile_wh[0], self.overlap)
        ys = _starts(height, self.tile_wh[1], self.overlap)
        return np.asarray([(x, y, min(x + self.tile_wh[0], width), min(y + self.tile_wh[1], height))
                           for y in ys for x in xs], dtype=np.int64).reshape(-1, 4)

    def tile_count(self, width: int, height: int) -> int:
        return len(_starts(width, self.tile_wh[0], self.overlap)) * len(_starts(height, self.tile_wh[1],
                                                                                  self.overlap))


def _starts(length: int, tile: int, overlap: float) -> list[int]:
    """Left (or top) edges: steps of tile x (1 - overlap) from 0, the last one moved back so it ends at the edge."""
    if length <= tile:
        return [0]
    step = max(1, tile - int(overlap * tile))  # SAHI's step: the overlap rounded down to whole pixels
    return [*range(0, length - tile, step), length - tile]


@dataclass(frozen=True)
class Decoding:
    """What the spec's `detection` section says about turning outputs into detections."""

    input_wh: tuple[int, int]
    strides: tuple[int, ...]
    score_threshold: float = 0.001
    nms_iou: float = 0.6
    max_detections: int = 100
    candidates_per_level: int = 1000
    """Best-scoring locations per level considered before NMS (torchvision FCOS's topk_candidates)."""
    tiling: Tiling | None = None
    """Sliced inference (runtime.tiling) for images larger than the input; None: each image letterboxed whole."""

    def to_dict(self) -> dict[str, object]:
        """The settings a bundle or a saved detector carries (input and strides are the network's own)."""
        out: dict[str, object] = {"score_threshold": self.score_threshold, "nms_iou": self.nms_iou,
                                  "max_detections": self.max_detections}
        if self.tiling is not None:
            out["tiling"] = self.tiling.to_dict()
        return out

    @classmethod
    def from_dict(cls, raw: dict, input_wh: tuple[int, int], strides: tuple[int, ...]) -> Decoding:
        tiling = raw.get("tiling")
        return cls(input_wh, strides, float(raw["score_threshold"]), float(raw["nms_iou"]),
                   int(raw["max_detections"]), tiling=Tiling.from_dict(tiling) if tiling else None)


@dataclass(frozen=True)
class Detections:
    """One image's detections, best first: boxes [N, 4] xyxy float32, scores [N] float32, labels [N] int64."""

    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.scores)


def detect(class_logits: np.ndarray, regression: np.ndarray, centerness: np.ndarray, decoding: Decoding,
           letterbox: Letterbox | None = None) -> Detections:
    """One image's raw outputs ([A, C], [A, 4], [A]) -> its detections, in the original image's pixels when a
    letterbox is given (else in input pixels)."""
    scores = np.sqrt(_sigmoid(class_logits) * _sigmoid(centerness)[:, None])
    boxes = decode_boxes(regression, decoding.input_wh, decoding.strides)
    picked_locations, picked_labels = _candidates(scores, decoding)
    chosen_boxes, chosen_scores = boxes[picked_locations], scores[picked_locations, picked_labels]
    keep = nms(chosen_boxes, chosen_scores, picked_labels, decoding.nms_iou, decoding.max_detections)
    out_boxes = chosen_boxes[keep]
    if letterbox is not None:
        out_boxes = letterbox.to_image(out_boxes)
    return Detections(out_boxes.astype(np.float32), chosen_scores[keep].astype(np.float32),
                      picked_labels[keep].astype(np.int64))


def _candidates(scores: np.ndarray, decoding: Decoding) -> tuple[np.ndarray, np.ndarray]:
    """(location, class) pairs above the threshold, at most `candidates_per_level` best per level."""
    sizes = [rows * cols for rows, cols in level_shapes(decoding.input_wh, decoding.strides)]
    picked_locations, picked_labels = [], []
    start = 0
    for size in sizes:
        level = scores[start:start + size]
        where, label = np.nonzero(level > decoding.score_threshold)
        values = level[where, label]
        best = np.lexsort((where * level.shape[1] + label, -values))[:decoding.candidates_per_level]
        picked_locations.append(where[best] + start)
        picked_labels.append(label[best])
        start += size
    return np.concatenate(picked_locations).astype(np.int64), np.concatenate(picked_labels).astype(np.int64)


def detect_batch(class_logits: np.ndarray, regression: np.ndarray, centerness: np.ndarray, decoding: Decoding,
                 letterboxes: list[Letterbox] | None = None) -> list[Detections]:
    """`detect` for each image of a batch ([B, A, C], [B, A, 4], [B, A])."""
    return [detect(class_logits[i], regression[i], centerness[i], decoding,
                   letterboxes[i] if letterboxes is not None else None) for i in range(len(class_logits))]
