"""Where a tagger's tags come from: the embedded photo mosaics (the same settings give the same pixels, a project
may use some of their tags) and Label Studio multiple-choice results (several tags, none, malformed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from core.spec.data import PHOTO_MOSAIC_TAGS, PhotoMosaicsSource
from vision.data.imageio import PixelLimits
from vision.data.labelstudio import interpret
from vision.data.photo_tags import TAGS
from vision.data.sources import SourceStats
from vision.data.tag_sources import MULTIPLE_CHOICES, iter_tagged_source


def _items(source: PhotoMosaicsSource, classes: list[str], root: Path) -> list:
    return list(iter_tagged_source(source, root, SourceStats(), PixelLimits(), classes))


def test_the_spec_names_the_tags_the_mosaics_carry() -> None:
    assert list(PHOTO_MOSAIC_TAGS) == TAGS


def test_photo_mosaics_are_the_same_pixels_for_the_same_settings(tmp_path: Path) -> None:
    source = PhotoMosaicsSource(kind="photo_mosaics", images=12, size_px=32, grid=2)
    first, second = _items(source, TAGS, tmp_path), _items(source, TAGS, tmp_path)
    assert [i.label for i in first] == [i.label for i in second]
    assert all(np.array_equal(np.asarray(a.read()), np.asarray(b.read())) for a, b in zip(first, second, strict=True))
    other = _items(source.model_copy(update={"seed": 1}), TAGS, tmp_path)
    assert [np.asarray(i.read()).tobytes() for i in other] != [np.asarray(i.read()).tobytes() for i in first]


def test_a_project_using_some_tags_gets_only_those(tmp_path: Path) -> None:
    source = PhotoMosaicsSource(kind="photo_mosaics", images=30, size_px=32, grid=2)
    labels = [i.label for i in _items(source, ["animal", "plant"], tmp_path)]
    assert {tag for label in labels for tag in label.split("|") if tag} == {"animal", "plant"}


def _annotated(*results: dict) -> dict:
    return {"id": 1, "data": {"image": "/data/local-files/?d=x.png"}, "annotations": [{"result": list(results)}]}


def _choices(*names: object) -> dict:
    return {"type": "choices", "from_name": "label", "to_name": "image", "value": {"choices": list(names)}}


def test_multiple_choices_become_one_sorted_tag_field() -> None:
    found = interpret(_annotated(_choices("rain", "night"), _choices("tunnel")), MULTIPLE_CHOICES, False)
    assert not isinstance(found, str)
    assert found.label == "night|rain|tunnel"
    assert found.problems == []


def test_an_annotation_choosing_nothing_is_a_negative_not_a_skip() -> None:
    found = interpret(_annotated(), MULTIPLE_CHOICES, False)
    assert not isinstance(found, str)
    assert found.label is None  # read as the empty tag field: an image showing none of the tags


def test_an_annotation_with_unreadable_choices_is_skipped_with_the_reason_not_read_as_a_negative() -> None:
    reason = interpret(_annotated(_choices("night|rain"), _choices(3), _choices("tunnel")), MULTIPLE_CHOICES, False)
    assert isinstance(reason, str)
    assert reason.startswith("some of the annotation's tags cannot be read")
    assert "result 0: a tag name may not contain '|'" in reason
    assert "result 1: choices must be a list of tag names" in reason
