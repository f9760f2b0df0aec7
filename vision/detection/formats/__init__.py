"""Box sources in the formats annotation tools export (COCO, YOLO, Pascal VOC), read into one form: images
with their boxes in xyxy pixels of the image as stored. Each format module reads and writes its format; the
round trip is exact (tests)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from PIL import Image

from core.spec.data import CocoSource, LabelStudioSource, ProjectSource, Source, VocSource, YoloSource
from vision.data.labelstudio import RECTANGLES
from vision.data.sources import Provenance, RepoFiles, SourceStats, UnsupportedSource, labelstudio_items


@dataclass(frozen=True)
class RawBox:
    """A box as a source states it, before ingest checks it against its image."""

    label: str
    x1: float
    y1: float
    x2: float
    y2: float
    origin: str
    """Where in the source: `annotations.json#annotation 17`, `labels/a.txt:3`, `Annotations/a.xml#object 2`."""
    normalised: bool = False
    """Coordinates are fractions of the image's width and height (YOLO), not pixels."""
    category: str = ""
    """The annotation's own category when the source's class_map renamed it to `label`; empty otherwise."""

    def in_pixels(self, width: int, height: int) -> tuple[float, float, float, float]:
        if not self.normalised:
            return self.x1, self.y1, self.x2, self.y2
        return self.x1 * width, self.y1 * height, self.x2 * width, self.y2 * height


@dataclass(frozen=True)
class BoxProblem:
    """A box (or annotation entry) that cannot be used, and why."""

    origin: str
    reason: str


@dataclass(frozen=True)
class LabelledImage:
    """One image of a box source with everything its annotation says about it."""

    source: str
    origin: str
    read: Callable[[], Image.Image]
    boxes: tuple[RawBox, ...]
    problems: tuple[BoxProblem, ...] = ()
    """Entries of this image's annotation that are not boxes at all (malformed rows, unknown class ids...)."""
    group: str = ""
    declared_size: tuple[int, int] | None = None
    """(width, height) the annotation says the image has, when it says so: checked against the file."""
    provenance: Provenance = field(default_factory=Provenance)


@dataclass
class SourceProblems:
    """Annotation entries that belong to no image (an annotation of an image id that does not exist)."""

    orphans: list[BoxProblem] = field(default_factory=list)


def iter_box_source(source: Source, root: Path, files: RepoFiles, stats: SourceStats,
                    problems: SourceProblems) -> Iterator[LabelledImage]:
    """The source's images with their boxes, each box's category renamed by the source's `class_map`."""
    mapping: dict[str, str] = getattr(source, "class_map", {})
    for item in _read_box_source(source, root, files, stats, problems):
        yield mapped(item, mapping) if mapping else item


ANY_CATEGORY = "*"
"""A class_map key that stands for every category the map does not name."""


def mapped(item: LabelledImage, mapping: dict[str, str]) -> LabelledImage:
    """`item` with each box's label renamed by `mapping` (`"*"` for any category it does not name), its own
    category kept; without a `"*"`, labels the map does not name stay as they are."""
    def renamed(box: RawBox) -> RawBox:
        target = mapping.get(box.label, mapping.get(ANY_CATEGORY))
        return box if target is None else replace(box, label=target, category=box.category or box.label)

    return replace(item, boxes=tuple(renamed(box) for box in item.boxes))


def _read_box_source(source: Source, root: Path, files: RepoFiles, stats: SourceStats,
                     problems: SourceProblems) -> Iterator[LabelledImage]:
    from vision.detection.formats import coco, project, voc, yolo

    if isinstance(source, CocoSource):
        yield from coco.read(source, root, files, problems)
    elif isinstance(source, YoloSource):
        yield from yolo.read(source, root, files, stats)
    elif isinstance(source, VocSource):
        yield from voc.read(source, root, files, stats)
    elif isinstance(source, ProjectSource):
        yield from project.read(source, root, files, stats)
    elif isinstance(source, LabelStudioSource):
        for found, origin, read, provenance in labelstudio_items(source, root, files, stats, RECTANGLES):
            boxes = tuple(RawBox(label, x1, y1, x2, y2, f"{origin} box {i}", normalised=True)
                          for i, (label, x1, y1, x2, y2) in enumerate(found.boxes))
            yield LabelledImage(f"labelstudio:{source.path}", origin, read, boxes,
                                tuple(BoxProblem(origin, p) for p in found.problems), provenance=provenance)
    else:
        raise UnsupportedSource(f"{source.kind} sources carry no boxes; a detector reads coco, yolo, voc, labelstudio "
                                "or project")


def number(value: object) -> float | None:
    """A JSON/XML/text value as a finite float, or None."""
    try:
        result = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return result if result == result and abs(result) != float("inf") else None
