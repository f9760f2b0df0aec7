"""Sources read from another detection project's outputs: `crops` (one labelled crop per ingested box, its fine
category by default) and `project` (the same images with their boxes folded by a class map), each image in the
split it has in that project, an image its cleaning removed skipped with the reason."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.spec.data import CropsSource, ProjectSource
from vision.data.imageio import PixelLimits
from vision.data.sources import RepoFiles, SourceStats, UnsupportedSource, iter_source
from vision.detection.formats import SourceProblems, iter_box_source


def _write(path: Path, header: list[str], rows: list[list[object]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def _detection_outputs(root: Path) -> None:
    """A detection project `street` after ingest and split: c.png was removed by its cleaning (no split)."""
    ingest = root / "data" / "street" / "ingest"
    (ingest / "images").mkdir(parents=True)
    for name in ("a", "b", "c"):
        Image.fromarray(np.full((64, 64, 3), 120, np.uint8)).save(ingest / "images" / f"{name}.png")
    _write(ingest / "manifest.csv", ["path", "label", "width", "height"],
           [[f"images/{name}.png", "car", 64, 64] for name in ("a", "b", "c")])
    _write(ingest / "boxes.csv", ["path", "label", "x1", "y1", "x2", "y2", "category"],
           [["images/a.png", "car", 4, 4, 40, 30, "sedan"], ["images/a.png", "car", 30, 30, 60, 60, "bus"],
            ["images/b.png", "car", 10, 10, 50, 50, "bus"], ["images/c.png", "car", 10, 10, 50, 50, "bus"]])
    _write(root / "data" / "street" / "split" / "split.csv", ["path", "label", "group", "split", "train_only"],
           [["images/a.png", "car", "a", "train", "False"], ["images/b.png", "car", "b", "test", "False"]])


def test_each_box_is_a_labelled_crop_in_its_images_split(tmp_path: Path) -> None:
    _detection_outputs(tmp_path)
    stats = SourceStats()
    items = list(iter_source(CropsSource(kind="crops", project="street", padding=0.0), tmp_path, stats=stats))
    assert [(i.label, i.origin, i.provenance.fixed_split) for i in items] == [
        ("sedan", "images/a.png#box 0", "train"), ("bus", "images/a.png#box 1", "train"),
        ("bus", "images/b.png#box 0", "test")]
    assert items[0].group == items[1].group != items[2].group
    assert items[0].read().size == (36, 26)
    assert [(s.origin, "cleaning" in s.reason) for s in stats.skipped] == [("data/street/ingest/images/c.png", True)]
    coarse = list(iter_source(CropsSource(kind="crops", project="street", label="class"), tmp_path))
    assert {i.label for i in coarse} == {"car"}


def test_a_project_source_folds_the_fine_categories_and_keeps_each_images_split(tmp_path: Path) -> None:
    _detection_outputs(tmp_path)
    stats = SourceStats()
    source = ProjectSource(kind="project", project="street", class_map={"*": "vehicle", "bus": "bus"})
    images = list(iter_box_source(source, tmp_path, RepoFiles(tmp_path.resolve(), PixelLimits()), stats,
                                  SourceProblems()))
    assert [(i.origin, i.provenance.fixed_split) for i in images] == [
        ("data/street/ingest/images/a.png", "train"), ("data/street/ingest/images/b.png", "test")]
    assert [(b.label, b.category) for b in images[0].boxes] == [("vehicle", "sedan"), ("bus", "bus")]
    assert images[0].read().size == images[0].declared_size == (64, 64)
    assert [s.origin for s in stats.skipped] == ["data/street/ingest/images/c.png"]


def test_a_source_of_a_project_not_yet_run_says_which_files_are_missing(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedSource, match="run that project's stages first"):
        list(iter_source(CropsSource(kind="crops", project="street"), tmp_path))
