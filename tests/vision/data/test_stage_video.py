"""Video ingest: frames sampled at the spec's rate, static stretches dropped, one group per video."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest

from core.spec.data import VideoSource
from stages.ingest import ingest
from vision.data.sources import SourceStats, iter_source
from vision.data.video import sample_frames

FPS = 10


def _write_video(path: Path, static_before: int = 20, moving: int = 20, static_after: int = 20) -> None:
    """A grey scene with a white square: still, then sliding 4 px per frame, then still again."""
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, (96, 64))
    rng = np.random.default_rng(0)
    background = rng.integers(60, 120, (64, 96, 3), dtype=np.uint8)  # texture gives the flow something to track
    x = 10
    for index in range(static_before + moving + static_after):
        if static_before <= index < static_before + moving:
            x += 2
        frame = background.copy()
        frame[20:44, x:x + 24] = 255
        writer.write(frame)
    writer.release()


def test_static_stretches_are_dropped_and_motion_is_kept(tmp_path: Path) -> None:
    video = tmp_path / "drive.avi"
    _write_video(video)
    kept, dropped = sample_frames(video, fps=FPS, static_flow_px=0.3)
    times = [f.time_s for f in kept]
    assert dropped >= 30, times  # most of the 40 still frames
    assert times[0] == 0.0  # the first frame is always kept
    moving = [t for t in times if 2.0 <= t < 4.0]
    assert len(moving) >= 15, times  # nearly every frame of the motion


def test_sampling_rate_follows_the_spec(tmp_path: Path) -> None:
    video = tmp_path / "drive.avi"
    _write_video(video, static_before=0, moving=60, static_after=0)
    kept, _ = sample_frames(video, fps=2, static_flow_px=0.0)
    assert [f.time_s for f in kept] == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0, 5.5]


def test_folder_labels_groups_and_unreadable_videos(tmp_path: Path) -> None:
    _write_video(tmp_path / "videos" / "car" / "a.avi")
    (tmp_path / "videos" / "car" / "broken.avi").write_bytes(b"not a video")
    stats = SourceStats()
    items = iter_source(VideoSource(kind="video", path="videos", fps=FPS), tmp_path, 0.3, stats)
    result = ingest(items, ["car", "bike"], (8, 8), tmp_path / "out")
    assert stats.static_frames_dropped >= 30
    assert {r.label for r in result.records} == {"car"}
    assert {r.group for r in result.records} == {(tmp_path / "videos/car/a.avi").as_posix()}
    assert [q.reason for q in result.quarantined] == ["unreadable image (unreadable video (cannot open video))"]


def test_manifest_labels_by_time_span(tmp_path: Path) -> None:
    _write_video(tmp_path / "raw" / "drive.avi", static_before=0, moving=60, static_after=0)
    with (tmp_path / "raw" / "spans.csv").open("w", newline="") as handle:
        csv.writer(handle).writerows([("video", "start_s", "end_s", "label"), ("drive.avi", 0, 2.45, "car"),
                                      ("drive.avi", 2.5, 4.45, "bike")])
    source = VideoSource(kind="video", path="raw/drive.avi", fps=2, label_from="manifest", manifest="raw/spans.csv")
    result = ingest(iter_source(source, tmp_path, 0.0), ["car", "bike"], (8, 8), tmp_path / "out")
    assert [r.label for r in result.records] == ["car"] * 5 + ["bike"] * 4
    assert len(result.quarantined) == 3  # frames after 4.45 s have no span
    assert all(q.reason.startswith("no label") for q in result.quarantined)


@pytest.mark.parametrize("flow", [0.0, 100.0])
def test_threshold_extremes(tmp_path: Path, flow: float) -> None:
    video = tmp_path / "drive.avi"
    _write_video(video)
    kept, dropped = sample_frames(video, fps=FPS, static_flow_px=flow)
    assert (len(kept), dropped) == ((60, 0) if flow == 0.0 else (1, 59))
