"""Each box format round-trips a hand-made box set exactly into canonical xyxy pixels, and ingest quarantines
every kind of bad box with its reason while the image keeps its good boxes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.spec.data import BoxSection, CocoSource, VocSource, YoloSource
from stages.detection.ingest import ingest_boxes
from vision.data.imageio import PixelLimits
from vision.data.sources import RepoFiles, SourceStats, UnsupportedSource
from vision.data.strata import NEGATIVE
from vision.detection.formats import SourceProblems, coco, iter_box_source, voc, yolo

CLASSES = ["car", "person"]
# (file, width, height, boxes as xyxy pixels): dyadic values so every conversion is exact in floats
IMAGES = [
    ("a.png", 64, 32, [("car", 2.0, 4.0, 34.0, 20.0), ("person", 40.5, 0.0, 64.0, 32.0)]),
    ("b.png", 32, 64, [("person", 8.0, 8.0, 16.0, 40.0)]),
    ("empty.png", 32, 32, []),
]


def _images(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, (name, width, height, _) in enumerate(IMAGES):
        pixels = np.random.default_rng(i).integers(0, 256, (height, width, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / name)


def _read(source, root: Path, rules: BoxSection | None = None, out: Path | None = None):
    files = RepoFiles(root.resolve(), PixelLimits())
    items = list(iter_box_source(source, root, files, SourceStats(), SourceProblems()))
    return ingest_boxes(items, CLASSES, (8, 8), rules or BoxSection(), out or root / "out")


def _canonical(result) -> list[tuple[str, int, list[tuple]]]:
    by_origin = {r.origin.rsplit("/", 1)[-1]: r for r in result.records}
    return [(name, len(result.boxes[by_origin[name].path]),
             [(b.label, b.x1, b.y1, b.x2, b.y2) for b in result.boxes[by_origin[name].path]])
            for name, *_ in IMAGES]


EXPECTED = [(name, len(boxes), boxes) for name, _, _, boxes in IMAGES]


def test_coco_xywh_round_trips_to_canonical_xyxy(tmp_path: Path) -> None:
    _images(tmp_path / "data" / "images")
    coco.write(tmp_path / "data" / "instances.json",
               [coco.CocoImage(f"images/{n}", w, h, tuple(b)) for n, w, h, b in IMAGES], CLASSES)
    document = json.loads((tmp_path / "data" / "instances.json").read_text())
    assert document["annotations"][0]["bbox"] == [2.0, 4.0, 32.0, 16.0]  # COCO's own xywh on disk
    result = _read(CocoSource(kind="coco", annotations="data/instances.json"), tmp_path)
    assert _canonical(result) == EXPECTED
    assert not result.quarantined
    assert not result.quarantined_boxes


def test_yolo_normalised_cxcywh_round_trips_to_canonical_xyxy(tmp_path: Path) -> None:
    _images(tmp_path / "set" / "images" / "train")
    yolo.write(tmp_path / "set", [(f"train/{n}", w, h, b) for n, w, h, b in IMAGES if b], CLASSES)
    line = (tmp_path / "set" / "labels" / "train" / "a.txt").read_text().splitlines()[0]
    assert line == "0 0.281250 0.375000 0.500000 0.500000"  # class cx cy w h, fractions of 64 x 32
    result = _read(YoloSource(kind="yolo", path="set"), tmp_path)
    assert _canonical(result) == EXPECTED  # empty.png has no label file: a negative
    assert result.summary()["negative_images"] == 1


def test_voc_one_based_xyxy_round_trips_to_canonical_xyxy(tmp_path: Path) -> None:
    _images(tmp_path / "voc" / "JPEGImages")
    for name, width, height, boxes in IMAGES:
        voc.write(tmp_path / "voc", name, width, height, boxes)
    text = (tmp_path / "voc" / "Annotations" / "a.xml").read_text()
    assert "<xmin>3</xmin><ymin>5</ymin><xmax>34</xmax><ymax>20</ymax>" in text  # VOC counts pixels from 1
    result = _read(VocSource(kind="voc", path="voc"), tmp_path)
    assert _canonical(result) == EXPECTED


def test_a_class_map_folds_fine_categories_into_the_spec_classes_and_quarantines_the_rest(tmp_path: Path) -> None:
    _images(tmp_path / "voc" / "JPEGImages")
    fine = iter(["sedan", "cyclist", "truck"])  # the three boxes of IMAGES, in order
    for name, width, height, boxes in IMAGES:
        voc.write(tmp_path / "voc", name, width, height, [(next(fine), *box[1:]) for box in boxes])
    source = VocSource(kind="voc", path="voc", class_map={"sedan": "car", "truck": "car", "bicycle": "person"})
    result = _read(source, tmp_path)
    kept = {name: [b.label for b in boxes] for name, boxes in result.boxes.items()}
    assert sorted(label for labels in kept.values() for label in labels) == ["car", "car"]
    assert sorted(b.row("x")["category"] for boxes in result.boxes.values() for b in boxes) == ["sedan", "truck"]
    assert len(result.quarantined_boxes) == 1, "the unmapped cyclist is not one of the classes"
    assert "cyclist" in result.quarantined_boxes[0].reason
    unmapped = _read(VocSource(kind="voc", path="voc"), tmp_path, out=tmp_path / "unmapped")
    assert len(unmapped.quarantined_boxes) == 3, "without the map no fine category is a class"


def test_every_bad_box_is_quarantined_with_its_reason_and_the_image_keeps_its_good_boxes(tmp_path: Path) -> None:
    _images(tmp_path / "d")
    boxes = [
        {"image_id": 1, "category_id": 1, "bbox": [2, 4, 32, 16]},          # good
        {"image_id": 1, "category_id": 3, "bbox": [0, 0, 8, 8]},            # 'persn': did you mean person?
        {"image_id": 1, "category_id": 1, "bbox": [10, 10, 0, 5]},         # no area
        {"image_id": 1, "category_id": 1, "bbox": [50, 10, 30, 10]},        # 16 px beyond the right edge
        {"image_id": 1, "category_id": 2, "bbox": [-1.5, 0, 20, 10]},       # 1.5 px out: clipped, kept
        {"image_id": 1, "category_id": 1, "bbox": [3, 4, 31, 16]},          # duplicate of the first
        {"image_id": 1, "category_id": 1, "bbox": [60, 1, 0.5, 8]},         # 0.5 px wide
        {"image_id": 1, "category_id": 1, "bbox": [1, 2, "x", 4]},          # not numbers
        {"image_id": 1, "category_id": 1, "bbox": [1, 2, 3, 4], "iscrowd": 1},
        {"image_id": 9, "category_id": 1, "bbox": [1, 2, 3, 4]},            # no such image
        {"image_id": 1, "category_id": 7, "bbox": [1, 2, 3, 4]},            # no such category
    ]
    (tmp_path / "d" / "x.json").write_text(json.dumps({
        "images": [{"id": 1, "file_name": "a.png", "width": 64, "height": 32},
                   {"id": 2, "file_name": "b.png", "width": 99, "height": 64}],  # size disagrees with the file
        "annotations": boxes,
        "categories": [{"id": 1, "name": "car"}, {"id": 2, "name": "person"}, {"id": 3, "name": "persn"}]}))
    root = tmp_path
    files = RepoFiles(root.resolve(), PixelLimits())
    problems = SourceProblems()
    items = list(iter_box_source(CocoSource(kind="coco", annotations="d/x.json"), root, files, SourceStats(), problems))
    result = ingest_boxes(items, CLASSES, (8, 8), BoxSection(min_side_px=1.0), root / "out")
    kept = result.boxes[result.records[0].path]
    assert [(b.label, b.x1, b.y1, b.x2, b.y2) for b in kept] == [("car", 2, 4, 34, 20), ("person", 0, 0, 18.5, 10)]
    reasons = [q.reason for q in result.quarantined_boxes]
    expected = ["unknown class 'persn'; did you mean 'person'?", "no area", "leaves the 64x32 image by 16.0 px",
                "duplicate of x.json#annotation 0", "smaller than data.boxes.min_side_px",
                "bbox is not four numbers", "crowd region", "category_id 7 is not in categories"]
    assert len(reasons) == len(expected)
    for fragment in expected:
        assert any(fragment in reason for reason in reasons), (fragment, reasons)
    assert [p.reason for p in problems.orphans] == ["image_id 9 is not in images"]
    assert len(result.quarantined) == 1
    assert "annotation says 99x64 px, the file is 32x64" in result.quarantined[0].reason


def test_yolo_rows_that_are_not_boxes_are_quarantined_with_their_line(tmp_path: Path) -> None:
    _images(tmp_path / "y" / "images")
    (tmp_path / "y" / "data.yaml").write_text("names: [car, person]\n")
    (tmp_path / "y" / "labels").mkdir()
    (tmp_path / "y" / "labels" / "a.txt").write_text("0 0.5 0.5 0.25 0.25\n1 0.5 0.5\n7 0.5 0.5 0.1 0.1\n"
                                                     "0 0.1 0.2 0.3 0.4 0.5 0.6 0.7\n1 nan 0.5 0.1 0.1\n")
    result = _read(YoloSource(kind="yolo", path="y"), tmp_path)
    reasons = {q.origin: q.reason for q in result.quarantined_boxes}
    assert set(reasons) == {"labels/a.txt:2", "labels/a.txt:3", "labels/a.txt:4", "labels/a.txt:5"}
    assert "class id '7' is not in data.yaml names (0..1)" in reasons["labels/a.txt:3"]
    assert sum(len(b) for b in result.boxes.values()) == 1


def test_voc_refuses_entity_expansion_and_names_the_file(tmp_path: Path) -> None:
    _images(tmp_path / "v" / "JPEGImages")
    (tmp_path / "v" / "Annotations").mkdir()
    (tmp_path / "v" / "Annotations" / "bomb.xml").write_text(
        '<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x "xxxxxxxx"><!ENTITY y "&x;&x;&x;&x;">]>'
        "<annotation><filename>a.png</filename><object><name>&y;</name></object></annotation>")
    stats = SourceStats()
    files = RepoFiles(tmp_path.resolve(), PixelLimits())
    items = list(iter_box_source(VocSource(kind="voc", path="v"), tmp_path, files, stats, SourceProblems()))
    assert items == []
    assert "bomb.xml" in stats.skipped[0].origin
    assert "EntitiesForbidden" in stats.skipped[0].reason


def test_a_file_that_is_not_coco_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "x.json").write_text('{"images": {}}')
    files = RepoFiles(tmp_path.resolve(), PixelLimits())
    with pytest.raises(UnsupportedSource, match="not a COCO instances file"):
        list(iter_box_source(CocoSource(kind="coco", annotations="x.json"), tmp_path, files, SourceStats(),
                             SourceProblems()))


def test_strata_are_the_rarest_class_and_small_strata_are_pooled() -> None:
    from stages.detection.ingest import Record, _with_strata
    from vision.data.strata import MIXED
    from vision.detection.boxes import Box

    def record(path: str) -> Record:
        return Record(path, NEGATIVE, "s", path, path, path, 10, 10, "RGB")

    car, person, bike = (Box(label, 0, 0, 5, 5) for label in ("car", "person", "bike"))
    boxes = {"1": [car, person], "2": [car, person], "3": [car, person], "4": [person], "5": [person],
             "6": [person], "7": [bike, person], "8": []}
    strata = {r.path: r.label for r in _with_strata([record(p) for p in sorted(boxes) ], boxes)}
    # car (3 boxes) is rarer than person (7): images 1-3 are 'car'; bike (1 box) makes a stratum of one image, and
    # the negative another: both pooled, and the pool of two joins the largest stratum (person)
    assert strata == {"1": "car", "2": "car", "3": "car", "4": "person", "5": "person", "6": "person",
                      "7": "person", "8": "person"}
    assert MIXED not in strata.values()
