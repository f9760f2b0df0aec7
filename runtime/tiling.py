"""Sliced inference for small objects in large images: the image cut into overlapping tiles (and, optionally, the
whole image letterboxed), each run through the detector, the detections mapped back to the image and merged.
numpy only, so evaluation, dependability and the model server cut, run and merge the same way.

SAHI (PyPI `sahi`) is the reference for the method: its slice grid (fixed steps of tile x (1 - overlap), the last
tile shifted back inside the image) is used as it is; its merge (boxes matched by intersection over the smaller
box) is used for boxes a tile edge cut, without growing boxes (see `merge`). sahi is not imported: it brings
OpenCV, shapely and a CLI stack into a server that has only numpy, Pillow and ONNX Runtime, and works on
per-object Python instances where this keeps arrays.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image

from runtime.detections import Decoding, Detections, Letterbox, detect, nms

PAD_VALUE = 114
"""Grey of the letterbox padding (as YOLO pads): neither black nor white, so it looks like no object."""

Outputs = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
"""The detector's raw outputs for a batch: class logits [B, A, C], box regression [B, A, 4], centerness [B, A],
pooled features [B, D]."""

Run = Callable[[np.ndarray], Outputs]
"""The detector (torch or ONNX Runtime) on a uint8 batch N x H x W x 3 at its input size."""

CHUNK = 16
"""Tiles run through the detector at once: memory stays one chunk of tiles whatever the image's size."""


def fitted(image: np.ndarray, input_wh: tuple[int, int]) -> tuple[np.ndarray, Letterbox]:
    """uint8 H x W x 3 scaled to fit `input_wh` (bilinear, aspect kept), padded right and bottom: as training fed
    it."""
    height, width = image.shape[:2]
    fit = Letterbox.fit(width, height, input_wh)
    scaled = fit.scaled_size()
    canvas = np.full((input_wh[1], input_wh[0], 3), PAD_VALUE, dtype=np.uint8)
    resized = image if scaled == (width, height) else np.asarray(
        Image.fromarray(image).resize(scaled, Image.Resampling.BILINEAR))
    canvas[:scaled[1], :scaled[0]] = resized
    return canvas, fit


EDGE_PX = 2.0
"""A detection within this many pixels of an edge its tile shares with a neighbour is taken as cut by it."""


def cut_by_edge(boxes: np.ndarray, window: np.ndarray, width: int, height: int) -> np.ndarray:
    """[N] bool: which boxes (image pixels) touch an edge of `window` that lies inside the image, where the tile
    may have cut an object in two."""
    x1, y1, x2, y2 = (float(v) for v in window)
    return (((x1 > 0) & (boxes[:, 0] <= x1 + EDGE_PX)) | ((y1 > 0) & (boxes[:, 1] <= y1 + EDGE_PX))
            | ((x2 < width) & (boxes[:, 2] >= x2 - EDGE_PX)) | ((y2 < height) & (boxes[:, 3] >= y2 - EDGE_PX)))


CUT_CHUNK = 16
"""Cut boxes compared with every box at once: memory stays CUT_CHUNK x boxes (16 x 100,000 boxes: 100 MB at
most) whatever the image's size."""


def cut_parts(found: Detections, cut: np.ndarray, inside: float) -> np.ndarray:
    """[N] bool: cut boxes that are the cut-off part of a larger box of their class (at least `inside` of the cut
    box within it) scoring at least half as high: the object a neighbouring tile saw whole."""
    boxes = found.boxes.astype(np.float64)
    areas = np.prod(np.clip(boxes[:, 2:] - boxes[:, :2], 0, None), axis=1)
    scores = found.scores.astype(np.float64)
    parts = np.zeros(len(found), dtype=bool)
    candidates = np.flatnonzero(cut & (areas > 0))
    for start in range(0, len(candidates), CUT_CHUNK):
        chunk = candidates[start:start + CUT_CHUNK]
        top_left = np.maximum(boxes[chunk, None, :2], boxes[None, :, :2])
        bottom_right = np.minimum(boxes[chunk, None, 2:], boxes[None, :, 2:])
        inter = np.prod(np.clip(bottom_right - top_left, 0, None), axis=2)
        holder = ((inter >= inside * areas[chunk, None]) & (areas[None, :] > areas[chunk, None])
                  & (found.labels[None, :] == found.labels[chunk, None])
                  & (scores[None, :] >= 0.5 * scores[chunk, None]))
        parts[chunk] = holder.any(axis=1)
    return parts


def merge(found: Detections, cut: np.ndarray, iou: float, inside: float, limit: int) -> Detections:
    """Detections of overlapping tiles as one image's, best first (at most `limit`): the parts of objects a tile
    edge cut off are dropped (`cut_parts`), then class-wise NMS at `iou` removes an object seen whole in two tiles.

    SAHI merges instead (a kept box grows to the union of the boxes it matches): with the low score threshold mAP
    needs, a faint large box matching a sure small one swells it, so here boxes are only ever dropped."""
    keep = np.flatnonzero(~cut_parts(found, cut, inside))
    rest = Detections(found.boxes[keep], found.scores[keep], found.labels[keep])
    chosen = nms(rest.boxes, rest.scores, rest.labels, iou, limit)
    return Detections(rest.boxes[chosen], rest.scores[chosen], rest.labels[chosen])


@dataclass(frozen=True)
class SlicedImage:
    """One image's merged detections (in its own pixels) and the whole image's pooled features (what the OOD
    detectors read, as for an untiled detector)."""

    found: Detections
    features: np.ndarray


def sliced_detect(image: np.ndarray, run: Run, decoding: Decoding, whole: Outputs | None = None) -> SlicedImage:
    """Detect in uint8 H x W x 3 tile by tile (`decoding.tiling` says how). `whole`: the image's letterboxed
    outputs when the caller ran them already (the server batches whole images first); run here otherwise."""
    tiling = decoding.tiling
    assert tiling is not None, "sliced_detect is for a tiled detector"
    height, width = image.shape[:2]
    if whole is None:
        canvas, _ = fitted(image, decoding.input_wh)
        whole = tuple(o[0] for o in run(canvas[None]))  # type: ignore[assignment]
    logits, regression, centerness, features = whole
    parts: list[Detections] = []
    cut: list[np.ndarray] = []
    if tiling.whole_image:
        parts.append(detect(logits, regression, centerness, decoding,
                            Letterbox.fit(width, height, decoding.input_wh)))
        cut.append(np.zeros(len(parts[-1]), dtype=bool))
    windows = tiling.windows(width, height)
    for start in range(0, len(windows), CHUNK):
        chunk = windows[start:start + CHUNK]
        pairs = [fitted(image[y1:y2, x1:x2], decoding.input_wh) for x1, y1, x2, y2 in chunk]
        raw = run(np.stack([tile for tile, _ in pairs]))
        for i, ((_, fit), window) in enumerate(zip(pairs, chunk, strict=True)):
            own = detect(raw[0][i], raw[1][i], raw[2][i], decoding, fit)
            shift = np.asarray([window[0], window[1], window[0], window[1]], dtype=np.float32)
            parts.append(Detections(own.boxes + shift, own.scores, own.labels))
            cut.append(cut_by_edge(parts[-1].boxes, window, width, height))
    joined = Detections(np.concatenate([p.boxes for p in parts]).reshape(-1, 4).astype(np.float32),
                        np.concatenate([p.scores for p in parts]).astype(np.float32),
                        np.concatenate([p.labels for p in parts]).astype(np.int64))
    merged = merge(joined, np.concatenate(cut), decoding.nms_iou, tiling.merge_threshold, decoding.max_detections)
    np.clip(merged.boxes[:, 0::2], 0, width, out=merged.boxes[:, 0::2])
    np.clip(merged.boxes[:, 1::2], 0, height, out=merged.boxes[:, 1::2])
    return SlicedImage(merged, np.asarray(features, np.float32))
