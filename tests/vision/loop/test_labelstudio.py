"""Label Studio JSON both ways: queue tasks with pre-annotations out, an export back in, for classes and for
boxes in percent coordinates; checked against the shape of Label Studio's documented export."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.spec.data import LabelStudioSource
from vision.data.imageio import PixelLimits
from vision.data.labelstudio import RECTANGLES, SINGLE_CHOICE, Guess, label_config, local_path, prediction, task
from vision.data.sources import RepoFiles, SourceStats, iter_source
from vision.detection.formats import SourceProblems, iter_box_source


def image(path: Path, width: int = 200, height: int = 100) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((height, width, 3), 90, np.uint8)).save(path)


def accepted(queue: list[dict], annotator: int = 7) -> list[dict]:
    """What Label Studio exports after a person submits each pre-annotation unchanged."""
    return [{"id": i + 1, "data": t["data"], "predictions": t["predictions"],
             "annotations": [{"id": 100 + i, "completed_by": annotator, "was_cancelled": False,
                              "result": t["predictions"][0]["result"]}]} for i, t in enumerate(queue)]


def test_boxes_round_trip_in_percent_coordinates(tmp_path: Path) -> None:
    image(tmp_path / "pool/a.png")
    guesses = [Guess("car", 0.91, (20.0, 10.0, 70.0, 60.0)), Guess("person", 0.4, (150.0, 0.0, 200.0, 100.0))]
    queued = task("/data/local-files/?d=pool/a.png", {"path": "pool/a.png"},
                  [prediction(guesses, 200, 100, "autodl:sha256-abc")])
    value = queued["predictions"][0]["result"][0]["value"]
    assert value == {"x": 10.0, "y": 10.0, "width": 25.0, "height": 50.0, "rotation": 0, "rectanglelabels": ["car"]}
    assert queued["predictions"][0]["result"][0]["score"] == 0.91
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels/round-1.json").write_text(json.dumps(accepted([queued])))
    source = LabelStudioSource(kind="labelstudio", path="labels")
    items = list(iter_box_source(source, tmp_path, RepoFiles(tmp_path.resolve(), PixelLimits()), SourceStats(),
                                 SourceProblems()))
    assert len(items) == 1
    boxes = [(b.label, *b.in_pixels(200, 100)) for b in items[0].boxes]
    assert boxes == [("car", 20.0, 10.0, 70.0, 60.0), ("person", 150.0, 0.0, 200.0, 100.0)]
    assert items[0].read().size == (200, 100)
    assert items[0].provenance.round == "1"
    assert items[0].provenance.annotator == "labelstudio:user-7"  # the default export names a user id
    assert items[0].provenance.confirmed == "true"
    assert items[0].provenance.train_only


def test_a_box_with_a_note_carries_it_as_region_meta_and_still_reads_back(tmp_path: Path) -> None:
    """A cascade's box: its fine class as the label, the coarse class and both scores as the region's meta text
    (what Label Studio shows beside a region); an export of it accepted unchanged reads back the fine class."""
    image(tmp_path / "pool/a.png")
    note = "digit 0.95 (detector), 7 0.81 (classifier)"
    queued = task("/data/local-files/?d=pool/a.png", {"path": "pool/a.png"},
                  [prediction([Guess("7", 0.77, (20.0, 10.0, 70.0, 60.0), note)], 200, 100, "autodl:pair", RECTANGLES)])
    result = queued["predictions"][0]["result"][0]
    assert result["meta"] == {"text": [note]}
    assert result["value"]["rectanglelabels"] == ["7"]
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels/round-1.json").write_text(json.dumps(accepted([queued])))
    items = list(iter_box_source(LabelStudioSource(kind="labelstudio", path="labels"), tmp_path,
                                 RepoFiles(tmp_path.resolve(), PixelLimits()), SourceStats(), SourceProblems()))
    assert [(b.label, *b.in_pixels(200, 100)) for b in items[0].boxes] == [("7", 20.0, 10.0, 70.0, 60.0)]


def test_documented_export_is_read(tmp_path: Path) -> None:
    """The annotated task of labelstud.io/guide/task_format (image made local), a reviewer's second annotation
    and a cancelled one."""
    image(tmp_path / "img/1.jpg", 400, 300)
    exported = [{
        "id": 1, "project": 83, "data": {"image": "/data/upload/1/5d3a2f1b-1.jpg"},
        "annotations": [
            {"id": "1001", "completed_by": 10, "was_cancelled": False, "ground_truth": False,
             "result": [{"from_name": "tag", "id": "Dx_aB91ISN", "source": "$image", "to_name": "img",
                         "type": "rectanglelabels", "value": {"height": 10.458911419423693,
                                                              "rectanglelabels": ["Moonwalker"], "rotation": 0,
                                                              "width": 12.4, "x": 50.8, "y": 5.869797225186766}}]},
            {"id": "1002", "completed_by": {"id": 11, "email": "reviewer@example.com"}, "was_cancelled": False,
             "result": [{"type": "rectanglelabels", "from_name": "tag", "to_name": "img",
                         "value": {"x": 50.0, "y": 5.0, "width": 12.5, "height": 10.0,
                                   "rectanglelabels": ["Moonwalker"]}}]},
            {"id": "1003", "completed_by": 12, "was_cancelled": True, "result": []}],
        "predictions": []}]
    (tmp_path / "export.json").write_text(json.dumps(exported))
    source = LabelStudioSource(kind="labelstudio", path="export.json", images="img", loop=False)
    stats = SourceStats()
    [item] = iter_box_source(source, tmp_path, RepoFiles(tmp_path.resolve(), PixelLimits()), stats, SourceProblems())
    assert [(b.label, *b.in_pixels(400, 300)) for b in item.boxes] == [("Moonwalker", 200.0, 15.0, 250.0, 45.0)]
    assert item.provenance.annotator == "labelstudio:reviewer@example.com"
    assert not item.provenance.train_only  # loop: false splits like any source
    assert item.read().size == (400, 300)  # upload prefix stripped to find 1.jpg


def test_classification_round_trip_and_auto_labels(tmp_path: Path) -> None:
    for name in ("a", "b", "c", "d"):
        image(tmp_path / f"pool/{name}.png")
    queue = [task(f"/data/local-files/?d=pool/{n}.png", {}, [prediction([Guess(label, 0.8)], 200, 100, "m1")])
             for n, label in (("a", "cat"), ("b", "dog"), ("c", "cat"), ("d", "dog"))]
    assert queue[0]["predictions"][0]["result"][0]["value"] == {"choices": ["cat"]}
    export = accepted(queue[:2])
    export[1]["annotations"][0]["result"] = [{"type": "choices", "from_name": "label", "to_name": "image",
                                              "value": {"choices": ["cat"]}}]  # the person corrects dog -> cat
    export.append({"id": 3, "data": queue[2]["data"], "predictions": queue[2]["predictions"], "annotations": []})
    export.append({"id": 4, "data": queue[3]["data"], "predictions": queue[3]["predictions"],
                   "annotations": [{"completed_by": 1, "was_cancelled": True, "result": []}]})
    (tmp_path / "export.json").write_text(json.dumps(export))

    def read(accept: bool) -> tuple[list, SourceStats]:
        stats = SourceStats()
        source = LabelStudioSource(kind="labelstudio", path="export.json", accept_predictions=accept)
        return list(iter_source(source, tmp_path, stats=stats)), stats

    people, stats = read(False)
    assert [(i.label, i.provenance.confirmed) for i in people] == [("cat", "true"), ("cat", "true")]
    assert sorted(s.reason for s in stats.skipped) == [
        "every annotation of the task was cancelled (skipped by the annotator)", "not annotated yet"]
    with_auto, _ = read(True)
    auto = with_auto[2]
    assert (auto.label, auto.provenance.confirmed, auto.provenance.annotator) == ("cat", "false", "model:m1")
    assert auto.provenance.train_only


def test_remote_and_escaping_images_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="never downloaded"):
        local_path("https://example.com/a.jpg")
    outside = tmp_path.parent / "outside.png"
    image(outside)
    export = [{"id": 1, "data": {"image": "https://example.com/a.jpg"},
               "annotations": [{"completed_by": 1, "result": [{"type": "choices", "value": {"choices": ["cat"]}}]}]},
              {"id": 2, "data": {"image": "/data/local-files/?d=../outside.png"},
               "annotations": [{"completed_by": 1, "result": [{"type": "choices", "value": {"choices": ["cat"]}}]}]}]
    (tmp_path / "export.json").write_text(json.dumps(export))
    items = list(iter_source(LabelStudioSource(kind="labelstudio", path="export.json"), tmp_path))
    from vision.data.imageio import RefusedFile

    for item in items:
        with pytest.raises(RefusedFile):
            item.read()


def test_a_file_that_is_not_an_export_is_a_clear_error(tmp_path: Path) -> None:
    from vision.data.sources import UnsupportedSource

    (tmp_path / "export.json").write_text(json.dumps({"tasks": []}))
    with pytest.raises(UnsupportedSource, match="not a Label Studio JSON export"):
        list(iter_source(LabelStudioSource(kind="labelstudio", path="export.json"), tmp_path))


def test_label_config_names_every_class() -> None:
    config = label_config(["car", 'a"b'], RECTANGLES)
    assert '<RectangleLabels name="label" toName="image">' in config
    assert "value='a\"b'" in config
    assert "<Choices" in label_config(["cat", "dog"], SINGLE_CHOICE)


@pytest.mark.parametrize(("exported", "named"), [
    ([{"image": "/data/local-files/?d=pool/a.png", "id": 1, "label": "cat", "annotator": 1, "annotation_id": 3,
       "created_at": "2026-01-01T00:00:00Z", "lead_time": 2.5}], "a JSON-MIN export"),
    ({"images": [], "annotations": [], "categories": []}, "a COCO export"),
    ("image,label\npool/a.png,cat\n", "not a JSON file"),
])
def test_an_export_that_is_not_label_studios_full_json_fails_ingest_naming_the_format(
        tmp_path: Path, exported: object, named: str) -> None:
    from vision.data.sources import UnsupportedSource

    text = exported if isinstance(exported, str) else json.dumps(exported)
    (tmp_path / "export.json").write_text(text)
    source = LabelStudioSource(kind="labelstudio", path="export.json")
    with pytest.raises(UnsupportedSource, match=named) as failure:
        list(iter_source(source, tmp_path, stats=SourceStats()))
    assert "Export -> JSON" in str(failure.value)


def test_the_queue_accounts_for_tasks_the_export_left_out_and_supplies_their_predictions(tmp_path: Path) -> None:
    for name in ("a", "b", "c"):
        image(tmp_path / f"pool/{name}.png")
    queue = [task(f"/data/local-files/?d=pool/{n}.png", {"path": f"pool/{n}.png"},
                  [prediction([Guess(label, 0.9)], 200, 100, "m2")]) for n, label in (("a", "cat"), ("b", "dog"),
                                                                                      ("c", "dog"))]
    (tmp_path / "labelstudio_tasks.json").write_text(json.dumps(queue))
    # Label Studio's default export: only the annotated task, its predictions as ids
    export = [{"id": 1, "data": queue[0]["data"], "predictions": [41],
               "annotations": [{"completed_by": 3, "was_cancelled": False,
                                "result": [{"type": "choices", "value": {"choices": ["cat"]}}]}]}]
    (tmp_path / "export.json").write_text(json.dumps(export))

    def read(**options: object) -> tuple[list, SourceStats]:
        stats = SourceStats()
        source = LabelStudioSource(kind="labelstudio", path="export.json", **options)
        return list(iter_source(source, tmp_path, stats=stats)), stats

    people, stats = read()
    assert [(i.label, i.provenance.annotator) for i in people] == [("cat", "labelstudio:user-3")]
    assert stats.skipped == []  # without the queue the two missing tasks cannot be known
    people, stats = read(queue="labelstudio_tasks.json")
    assert len(people) == 1
    assert [(Path(s.origin).name, s.reason.split(":")[0]) for s in stats.skipped] == [
        ("labelstudio_tasks.json#queued task 1", "in the queue but not in the export"),
        ("labelstudio_tasks.json#queued task 2", "in the queue but not in the export")]
    everything, stats = read(queue="labelstudio_tasks.json", accept_predictions=True)
    assert [(i.label, i.provenance.confirmed, i.provenance.annotator) for i in everything] == [
        ("cat", "true", "labelstudio:user-3"), ("dog", "false", "model:m2"), ("dog", "false", "model:m2")]
    assert stats.skipped == []
    _, stats = read(accept_predictions=True)  # ids alone: said so, not silently dropped
    assert stats.skipped == []


def test_auto_labels_json_is_read_as_a_source_of_predictions(tmp_path: Path) -> None:
    image(tmp_path / "pool/a.png")
    auto = [task("/data/local-files/?d=pool/a.png", {"path": "pool/a.png"},
                 [prediction([Guess("dog", 0.99)], 200, 100, "m2:auto")])]
    (tmp_path / "auto_labels.json").write_text(json.dumps(auto))
    source = LabelStudioSource(kind="labelstudio", path="auto_labels.json", accept_predictions=True)
    [item] = list(iter_source(source, tmp_path, stats=SourceStats()))
    assert (item.label, item.provenance.confirmed, item.provenance.annotator) == ("dog", "false", "model:m2:auto")
