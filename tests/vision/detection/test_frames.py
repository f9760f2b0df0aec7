"""`autodl frames`: a dash-cam video becomes an image set to annotate, static stretches dropped, and the set
reads back through the coco and yolo sources once annotated."""

from __future__ import annotations

import json
from pathlib import Path

from core.spec.data import BoxSection, CocoSource, YoloSource
from stages.detection.ingest import ingest_boxes
from tests.vision.data.test_stage_video import _write_video
from vision.data.imageio import PixelLimits
from vision.data.sources import RepoFiles, SourceStats
from vision.detection.formats import SourceProblems, iter_box_source


def test_frames_become_a_coco_set_grouped_by_video(repo: Path, run_autodl) -> None:
    tmp_path = repo
    _write_video(tmp_path / "drive.avi")
    _write_video(tmp_path / "night.avi", static_before=5, moving=10, static_after=5)
    code, out, err = run_autodl("frames", str(tmp_path / "drive.avi"), str(tmp_path / "night.avi"), "--out",
                                str(tmp_path / "to-label"), "--classes", "car,person", "--fps", "5")
    assert code == 0, err
    document = json.loads((tmp_path / "to-label" / "annotations.json").read_text())
    assert [c["name"] for c in document["categories"]] == ["car", "person"]
    assert document["annotations"] == []
    videos = {image["video_id"] for image in document["images"]}
    assert videos == {1, 2}
    drive = [i for i in document["images"] if i["video_id"] == 1]
    assert 8 <= len(drive) <= 12, "20 moving frames at 10 fps sampled at 5 fps; the still stretches mostly dropped"
    assert "static frames dropped" in out
    # annotated later: the frames come back through the coco source, one group per video
    files = RepoFiles(tmp_path.resolve(), PixelLimits())
    items = list(iter_box_source(CocoSource(kind="coco", annotations="to-label/annotations.json"), tmp_path, files,
                                 SourceStats(), SourceProblems()))
    result = ingest_boxes(items, ["car", "person"], (8, 8), BoxSection(), tmp_path / "ingest")
    assert {r.group for r in result.records} == {"video 1", "video 2"}


def test_frames_as_yolo_and_never_over_an_existing_folder(repo: Path, run_autodl) -> None:
    tmp_path = repo
    video, out = str(tmp_path / "drive.avi"), str(tmp_path / "set")
    _write_video(tmp_path / "drive.avi")
    code, _, err = run_autodl("frames", video, "--out", out, "--classes", "car", "--format", "yolo")
    assert code == 0, err
    assert "names:\n  0: 'car'" in (tmp_path / "set" / "data.yaml").read_text()
    files = RepoFiles(tmp_path.resolve(), PixelLimits())
    items = list(iter_box_source(YoloSource(kind="yolo", path="set"), tmp_path, files, SourceStats(), SourceProblems()))
    assert items
    assert all(not item.boxes for item in items)  # not annotated yet: every frame a negative
    before = sorted(p.name for p in (tmp_path / "set").rglob("*"))
    code, _, err = run_autodl("frames", video, "--out", out, "--classes", "car")
    assert code == 2
    assert "already exists" in err
    assert sorted(p.name for p in (tmp_path / "set").rglob("*")) == before
