"""The crops source reads a detection project's ingested boxes: one labelled crop per box, its fine category
by default, in the split its source image has in the detection project."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image

from core.spec.data import CropsSource
from vision.data.sources import iter_source


def _detection_outputs(root: Path) -> None:
    ingest = root / "data" / "street" / "ingest"
    (ingest / "images").mkdir(parents=True)
    for name in ("a", "b"):
        Image.fromarray(np.full((64, 64, 3), 120, np.uint8)).save(ingest / "images" / f"{name}.png")
    with open(ingest / "boxes.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label", "x1", "y1", "x2", "y2", "category"])
        writer.writerows([["images/a.png", "car", 4, 4, 40, 30, "sedan"],
                          ["images/a.png", "car", 30, 30, 60, 60, "bus"],
                          ["images/b.png", "car", 10, 10, 50, 50, "bus"]])
    (root / "data" / "street" / "prune").mkdir(parents=True)
    with open(root / "data" / "street" / "prune" / "split.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label", "group", "split", "train_only"])
        writer.writerows([["images/a.png", "car", "a", "train", "False"],
                          ["images/b.png", "car", "b", "test", "False"]])


def test_each_box_is_a_labelled_crop_in_its_images_split(tmp_path: Path) -> None:
    _detection_outputs(tmp_path)
    items = list(iter_source(CropsSource(kind="crops", project="street", padding=0.0), tmp_path))
    assert [(i.label, i.origin, i.provenance.fixed_split) for i in items] == [
        ("sedan", "images/a.png#box 0", "train"), ("bus", "images/a.png#box 1", "train"),
        ("bus", "images/b.png#box 0", "test")]
    assert items[0].group == items[1].group != items[2].group
    assert items[0].read().size == (36, 26)
    coarse = list(iter_source(CropsSource(kind="crops", project="street", label="class"), tmp_path))
    assert {i.label for i in coarse} == {"car"}
