"""Sliced inference (runtime.tiling) with a detector whose answers are known (tests/blob_detector.py): the tile
grid, the merge of a box cut by a tile edge, objects whole-image inference loses, and the tiles training reads."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from runtime.detections import Decoding, Detections, Tiling, detect, iou_matrix
from runtime.tiling import cut_by_edge, fitted, merge, sliced_detect
from tests.blob_detector import INPUT_WH, STRIDES, blob_outputs, scene
from vision.detection.data import DetectionSplit
from vision.detection.tiles import TiledImages, TileSampling, plan_tiles, visible_share

TILED = Decoding(INPUT_WH, STRIDES, 0.05, 0.5, 50, tiling=Tiling((32, 32), overlap=0.25, whole_image=False))


@pytest.mark.parametrize(("width", "height"), [(200, 120), (32, 32), (33, 90), (20, 10), (1000, 40)])
def test_windows_cover_the_image_stay_inside_it_and_overlap_as_asked(width: int, height: int) -> None:
    tiling = Tiling((32, 32), overlap=0.25)
    windows = tiling.windows(width, height)
    assert len(windows) == tiling.tile_count(width, height)
    covered = np.zeros((height, width), bool)
    for x1, y1, x2, y2 in windows:
        assert 0 <= x1 < x2 <= width
        assert 0 <= y1 < y2 <= height
        assert (x2 - x1, y2 - y1) == (min(32, width), min(32, height)), "every tile is whole (the last shifted in)"
        covered[y1:y2, x1:x2] = True
    assert covered.all()
    steps = np.diff(sorted({int(x) for x in windows[:, 0]}))
    assert (steps[:-1] == 24).all() if len(steps) > 1 else True, "SAHI's step: 32 - int(0.25 * 32)"


def test_merge_drops_the_part_a_tile_edge_cut_and_duplicates_but_keeps_neighbours_and_classes() -> None:
    found = Detections(np.array([[10, 10, 30, 30], [24, 10, 30, 30], [10, 10, 30, 30], [50, 50, 60, 60],
                                 [11, 10, 31, 30], [53, 50, 63, 60]], np.float32),
                       np.array([0.6, 0.9, 0.5, 0.4, 0.3, 0.35], np.float32), np.array([0, 0, 1, 0, 0, 0]))
    cut = np.array([False, True, False, False, False, False])
    merged = merge(found, cut, iou=0.6, inside=0.5, limit=10)
    assert merged.boxes.tolist() == [[10, 10, 30, 30], [10, 10, 30, 30], [50, 50, 60, 60], [53, 50, 63, 60]]
    assert merged.scores.tolist() == pytest.approx([0.6, 0.5, 0.4, 0.35]), "best first; the cut part is gone"
    assert merged.labels.tolist() == [0, 1, 0, 0], "another class is never suppressed"
    uncut = merge(found, np.zeros(6, bool), iou=0.6, inside=0.5, limit=10)
    assert [24, 10, 30, 30] in uncut.boxes.tolist(), "a whole small box inside a larger one is another object"
    assert len(merge(found, cut, iou=0.6, inside=0.5, limit=2)) == 2


def test_a_box_is_cut_only_by_tile_edges_inside_the_image() -> None:
    boxes = np.array([[0, 5, 10, 10], [31, 5, 40, 10], [5, 5, 10, 10]], np.float32)
    assert cut_by_edge(boxes, np.array([0, 0, 32, 32]), 100, 32).tolist() == [False, True, False]
    assert cut_by_edge(boxes, np.array([0, 0, 32, 32]), 32, 32).tolist() == [False, False, False]


def test_sliced_inference_finds_small_objects_exactly_where_whole_image_inference_loses_them() -> None:
    squares = [(100, 50, 10), (5, 5, 8), (150, 100, 12)]  # the first straddles the tiles at x 96 and 120
    image = scene(200, 120, squares)
    sliced = sliced_detect(image, blob_outputs, TILED)
    truth = sorted([float(x), float(y), float(x + s), float(y + s)] for x, y, s in squares)
    assert sorted(sliced.found.boxes.tolist()) == truth
    canvas, fit = fitted(image, INPUT_WH)
    whole = detect(*(o[0] for o in blob_outputs(canvas[None])[:3]), replace(TILED, tiling=None), fit)
    assert len(whole) < len(squares), "a 10 px square letterboxed from 200 px into 32 px keeps no bright pixel"
    assert sliced.features.shape == (2,), "the OOD features are the whole image's"


def test_the_whole_image_pass_adds_objects_larger_than_a_tile() -> None:
    image = scene(96, 96, [(8, 8, 80)])
    tiles_only = sliced_detect(image, blob_outputs, TILED).found
    with_whole = sliced_detect(image, blob_outputs, replace(TILED, tiling=replace(TILED.tiling, whole_image=True)))
    assert (iou_matrix(with_whole.found.boxes, np.array([[8, 8, 88, 88]])) > 0.9).any(), "seen on the whole image"
    assert len(tiles_only) >= 1


def test_decoding_round_trips_its_tiling_through_the_bundle_s_json() -> None:
    raw = TILED.to_dict()
    assert Decoding.from_dict(raw, INPUT_WH, STRIDES) == TILED
    assert "tiling" not in replace(TILED, tiling=None).to_dict()


def _split(tmp_path: Path, boxes: list[list[float]]) -> DetectionSplit:
    Image.fromarray(scene(128, 64, [])).save(tmp_path / "a.png")
    return DetectionSplit(tmp_path, ["a.png"], [np.asarray(boxes, np.float32).reshape(-1, 4)],
                          [np.zeros(len(boxes), np.int64)])


def test_training_tiles_cut_boxes_by_albumentations_visibility_and_sample_empty_ground(tmp_path: Path) -> None:
    split = _split(tmp_path, [[18, 4, 34, 20]])  # 14 of 16 px in the tile at x 0, 10 in the one at x 24
    tiling = Tiling((32, 32), overlap=0.25, whole_image=False)
    everything = plan_tiles(split, tiling, TileSampling(0.5, 100.0), seed=0)
    assert len(everything) == tiling.tile_count(128, 64), "all empty tiles kept when asked for plenty"
    held = [t for t in everything if visible_share(split.boxes[0], t.window)[0] >= 0.5]
    assert [t.window for t in held] == [(0, 0, 32, 32), (24, 0, 56, 32)]
    sampled = plan_tiles(split, tiling, TileSampling(0.5, 0.5), seed=0)
    assert len(sampled) == 2 + 1, "half an empty tile per tile with a box, rounded"
    views = TiledImages(split, held, INPUT_WH, min_visibility=0.5)
    for (_, target, _), tile in zip(views, held, strict=True):
        x1, y1 = tile.window[:2]
        expected = np.clip(np.array([[18, 4, 34, 20]]) - [x1, y1, x1, y1], 0, 32)
        assert target["boxes"].numpy().tolist() == expected.tolist()
    strict = TiledImages(split, held, INPUT_WH, min_visibility=0.8)
    assert [len(t["labels"]) for _, t, _ in strict] == [1, 0], "10 of 16 px inside the second tile: below 0.8"
