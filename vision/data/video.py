"""Frames from video files: sampled at a fixed rate, static stretches dropped by optical flow.

A car waiting at a light produces hundreds of nearly identical frames; a frame
is kept only when the mean Farneback optical-flow magnitude between it and the
last kept frame reaches `static_frame_flow_px` (measured at 160 px width).
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

FLOW_WIDTH_PX = 160
VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".mpg", ".mpeg"}


@dataclass(frozen=True)
class Frame:
    time_s: float
    rgb: np.ndarray


def _grey_small(rgb: np.ndarray) -> np.ndarray:
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    scale = FLOW_WIDTH_PX / grey.shape[1]
    return cv2.resize(grey, (FLOW_WIDTH_PX, max(1, round(grey.shape[0] * scale))), interpolation=cv2.INTER_AREA)


def mean_flow_px(previous: np.ndarray, current: np.ndarray) -> float:
    flow = cv2.calcOpticalFlowFarneback(previous, current, None, 0.5, 3, 15, 3, 5, 1.2, 0)
    return float(np.linalg.norm(flow, axis=2).mean())


def sample_frames(video: Path, fps: float, static_flow_px: float) -> tuple[list[Frame], int]:
    """(kept frames, number dropped as static). Raises ValueError if the file cannot be decoded."""
    capture = cv2.VideoCapture(str(video))
    if not capture.isOpened():
        raise ValueError("cannot open video")
    native_fps = capture.get(cv2.CAP_PROP_FPS) or fps
    step = max(native_fps / fps, 1.0)
    kept: list[Frame] = []
    dropped, index, next_pick, last_grey = 0, 0, 0.0, None
    try:
        while True:
            ok, bgr = capture.read()
            if not ok:
                break
            if index >= next_pick - 1e-9:
                next_pick += step
                rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
                grey = _grey_small(rgb)
                if last_grey is None or mean_flow_px(last_grey, grey) >= static_flow_px:
                    kept.append(Frame(round(index / native_fps, 3), rgb))
                    last_grey = grey
                else:
                    dropped += 1
            index += 1
    finally:
        capture.release()
    if index == 0:
        raise ValueError("video has no decodable frames")
    return kept, dropped


def frame_at(video: Path, time_s: float) -> np.ndarray:
    """The RGB frame `sample_frames` kept at `time_s` (decoded the same way, frame by frame: seeking is not
    exact in every container). Raises ValueError when the video or the time is not there."""
    capture = cv2.VideoCapture(str(video))
    if not capture.isOpened():
        raise ValueError("cannot open video")
    native_fps = capture.get(cv2.CAP_PROP_FPS) or 1.0
    wanted, index = round(time_s * native_fps), 0
    try:
        while True:
            ok, bgr = capture.read()
            if not ok:
                raise ValueError(f"video has no frame at {time_s:.3f} s")
            if index == wanted:
                return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            index += 1
    finally:
        capture.release()


@dataclass(frozen=True)
class LabelledSpan:
    video: Path
    start_s: float
    end_s: float
    label: str


def read_spans(manifest: Path) -> list[LabelledSpan]:
    """CSV rows video,start_s,end_s,label; video paths are relative to the CSV's folder."""
    with manifest.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if not {"video", "start_s", "end_s", "label"} <= set(reader.fieldnames or []):
            raise ValueError(f"{manifest} needs a header with columns video,start_s,end_s,label")
        return [LabelledSpan(manifest.parent / r["video"], float(r["start_s"]), float(r["end_s"]), r["label"].strip())
                for r in reader]


def label_at(spans: list[LabelledSpan], video: Path, time_s: float) -> str | None:
    for span in spans:
        if span.video == video and span.start_s <= time_s <= span.end_s:
            return span.label
    return None


def videos_by_class(folder: Path) -> Iterator[tuple[str, Path]]:
    for class_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        for file in sorted(p for p in class_dir.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES):
            yield class_dir.name, file
