"""Every box checked against its image before it enters the canonical box table: known class, positive area,
inside the image (clipped within a tolerance, quarantined beyond it), not too small, not a duplicate. A bad
box is quarantined with its reason; the image keeps its good boxes."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from core.spec.data import BoxSection
from runtime.detections import iou_matrix
from vision.detection.formats import BoxProblem, RawBox

BOX_FIELDS = ("path", "label", "x1", "y1", "x2", "y2", "category")
"""Columns of the canonical box table (boxes.csv): xyxy in pixels of the canonical image, 0-based; `category` is
the annotation's own category (the label before the source's class_map: a cascade's classifier learns it)."""
DECIMALS = 3


@dataclass(frozen=True)
class Box:
    label: str
    x1: float
    y1: float
    x2: float
    y2: float
    category: str = ""
    """The annotation's own category; empty when it is the label."""

    def row(self, path: str) -> dict[str, object]:
        return {"path": path, "label": self.label, "x1": self.x1, "y1": self.y1, "x2": self.x2, "y2": self.y2,
                "category": self.category or self.label}


def check_boxes(raw: Sequence[RawBox], width: int, height: int, classes: list[str], rules: BoxSection
                ) -> tuple[list[Box], list[BoxProblem]]:
    """(the boxes kept, clipped and rounded; the boxes quarantined, with reasons), in the source's order."""
    kept: list[Box] = []
    kept_origins: list[str] = []
    problems: list[BoxProblem] = []
    for box in raw:
        result = _check_one(box, width, height, classes, rules)
        if isinstance(result, str):
            problems.append(BoxProblem(box.origin, result))
            continue
        twin = _duplicate_of(result, kept, rules.duplicate_iou)
        if twin is not None:
            problems.append(BoxProblem(box.origin, f"duplicate of {kept_origins[twin]} (same class, IoU "
                                       f"{_iou(result, kept[twin]):.3f} >= data.boxes.duplicate_iou)"))
            continue
        kept.append(result)
        kept_origins.append(box.origin)
    return kept, problems


def _check_one(box: RawBox, width: int, height: int, classes: list[str], rules: BoxSection) -> Box | str:
    if box.label not in classes:
        close = difflib.get_close_matches(box.label, classes, n=1, cutoff=0.6)
        return f"unknown class '{box.label}'" + (f"; did you mean '{close[0]}'?" if close else
                                                 f"; classes are {classes}")
    x1, y1, x2, y2 = box.in_pixels(width, height)
    if x2 <= x1 or y2 <= y1:
        return f"no area: [{x1:g}, {y1:g}, {x2:g}, {y2:g}] needs x2 > x1 and y2 > y1"
    beyond = max(-x1, -y1, x2 - width, y2 - height)
    if beyond > rules.clip_tolerance_px:
        return (f"leaves the {width}x{height} image by {beyond:.1f} px: [{x1:g}, {y1:g}, {x2:g}, {y2:g}] "
                f"(data.boxes.clip_tolerance_px {rules.clip_tolerance_px:g})")
    x1, x2 = (round(min(max(v, 0.0), width), DECIMALS) for v in (x1, x2))
    y1, y2 = (round(min(max(v, 0.0), height), DECIMALS) for v in (y1, y2))
    if min(x2 - x1, y2 - y1) < rules.min_side_px:
        return (f"{x2 - x1:g}x{y2 - y1:g} px after clipping, smaller than data.boxes.min_side_px "
                f"{rules.min_side_px:g}")
    return Box(box.label, x1, y1, x2, y2, box.category)


def _coords(box: Box) -> np.ndarray:
    return np.array([[box.x1, box.y1, box.x2, box.y2]])


def _iou(a: Box, b: Box) -> float:
    return float(iou_matrix(_coords(a), _coords(b))[0, 0])


def _duplicate_of(box: Box, kept: list[Box], threshold: float) -> int | None:
    same = [i for i, other in enumerate(kept) if other.label == box.label]
    if not same:
        return None
    overlaps = iou_matrix(_coords(box), np.array([[kept[i].x1, kept[i].y1, kept[i].x2, kept[i].y2] for i in same]))[0]
    best = int(np.argmax(overlaps))
    return same[best] if overlaps[best] >= threshold else None
