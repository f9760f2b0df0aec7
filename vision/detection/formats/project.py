"""A `project` source: another detection project's ingested images and boxes, each box named by its annotation
category (the source's class_map then folds it), each image in the split it has there."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from core.spec.data import ProjectSource
from vision.data.ingested import ingested_images
from vision.data.sources import Provenance, RepoFiles, Skipped, SourceStats, UnsupportedSource
from vision.detection.formats import LabelledImage, RawBox


def read(source: ProjectSource, root: Path, files: RepoFiles, stats: SourceStats) -> Iterator[LabelledImage]:
    ingest, split_table = (root / path for path in source.inputs())
    name = f"project:{source.project}"
    if not (ingest / "manifest.csv").is_file() or not split_table.is_file():
        raise UnsupportedSource(f"{name}: {ingest}/manifest.csv or {split_table} does not exist; run that "
                                f"project's stages first (`dvc repro` runs them before this project's ingest)")
    for image in ingested_images(ingest, split_table):
        origin = f"data/{source.project}/ingest/{image.path}"
        if not image.split:
            stats.skipped.append(Skipped(origin, name, f"removed by {source.project}'s cleaning (a near-duplicate "
                                         "of an image kept there): it has no split to keep"))
            continue
        boxes = tuple(RawBox(box.category, box.x1, box.y1, box.x2, box.y2, f"{origin}#box {index}")
                      for index, box in enumerate(image.boxes))
        yield LabelledImage(name, origin, files.reader(ingest / image.path), boxes,
                            group=f"{name}:{image.group}", declared_size=(image.width, image.height),
                            provenance=Provenance(fixed_split=image.split))
