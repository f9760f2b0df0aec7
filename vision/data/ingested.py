"""Another project's ingested boxes with the split each image landed in there: what a `crops` source (one
classifier image per box) and a `project` source (the same images with a coarser class map) read.

A detection project's ingest keeps an image manifest and a box table; its split stage assigns every image that
survived cleaning. An image cleaning removed (a near-duplicate of a kept one) has no split: readers leave it out
and list it as skipped, so a copy of a test image never trains the other project.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from core.fsutil import read_csv


@dataclass(frozen=True)
class IngestedBox:
    label: str
    """The box's class in its project."""
    category: str
    """The annotation's own category (its name before that project's class_map)."""
    x1: float
    y1: float
    x2: float
    y2: float


@dataclass(frozen=True)
class IngestedImage:
    path: str
    """Relative to the project's ingest folder."""
    width: int
    height: int
    group: str
    split: str
    """`train`, `val` or `test` there; empty when cleaning removed the image."""
    boxes: tuple[IngestedBox, ...]


def ingested_images(ingest: Path, split_table: Path) -> list[IngestedImage]:
    """Every image of the ingest's manifest in its order, with its boxes in the box table's order."""
    boxes: dict[str, list[IngestedBox]] = {}
    for row in read_csv(ingest / "boxes.csv"):
        boxes.setdefault(row["path"], []).append(IngestedBox(
            row["label"], row.get("category") or row["label"], float(row["x1"]), float(row["y1"]), float(row["x2"]),
            float(row["y2"])))
    split_of = {row["path"]: row for row in read_csv(split_table)}
    images = []
    for row in read_csv(ingest / "manifest.csv"):
        placed = split_of.get(row["path"], {})
        images.append(IngestedImage(row["path"], int(row["width"]), int(row["height"]),
                                    placed.get("group") or row["path"], placed.get("split", ""),
                                    tuple(boxes.get(row["path"], ()))))
    return images

