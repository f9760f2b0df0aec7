"""A `project` source: another detection project's ingested images and boxes, each box named by its annotation
category (the source's class_map then folds it), each image in the split it has there."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from core.spec.data import ProjectSource
from vision.data.sources import Provenance, RepoFiles, SourceStats, kept_images
from vision.detection.formats import LabelledImage, RawBox


def read(source: ProjectSource, root: Path, files: RepoFiles, stats: SourceStats) -> Iterator[LabelledImage]:
    name, ingest = f"project:{source.project}", root / source.inputs()[0]
    for image in kept_images(source.project, source.inputs(), root, name, stats):
        origin = f"data/{source.project}/ingest/{image.path}"
        boxes = tuple(RawBox(box.category, box.x1, box.y1, box.x2, box.y2, f"{origin}#box {index}")
                      for index, box in enumerate(image.boxes))
        yield LabelledImage(name, origin, files.reader(ingest / image.path), boxes,
                            group=f"{name}:{image.group}", declared_size=(image.width, image.height),
                            provenance=Provenance(fixed_split=image.split))
