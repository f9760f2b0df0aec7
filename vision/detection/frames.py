"""From dash-cam videos to an image set ready for box annotation: frames sampled at a rate with static
stretches dropped (the same sampler video sources use), written as COCO (images listed, no boxes yet, each
frame's `video_id` so the annotated set keeps a video's frames in one split) or as the YOLO layout (data.yaml,
images/, an empty labels/ for the annotation tool to fill)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from core.fsutil import atomic_directory
from vision.data.video import sample_frames
from vision.detection.formats import coco, yolo


@dataclass
class FramesExport:
    frames: int = 0
    static_dropped: int = 0
    per_video: dict[str, int] = field(default_factory=dict)


def export_frames(videos: list[Path], out: Path, classes: list[str], fps: float = 2.0, static_flow_px: float = 0.3,
                  layout: str = "coco") -> FramesExport:
    """Write every video's kept frames under `out` (which must not exist yet: nothing is overwritten); ValueError
    for a video that cannot be decoded."""
    if out.exists():
        raise FileExistsError(f"{out} already exists; choose a new folder (nothing is overwritten)")
    result = FramesExport()
    images: list[coco.CocoImage] = []
    with atomic_directory(out) as folder:
        for video_id, video in enumerate(videos, start=1):
            frames, dropped = sample_frames(video, fps, static_flow_px)
            result.static_dropped += dropped
            result.per_video[video.as_posix()] = len(frames)
            for frame in frames:
                name = f"images/{video.stem}/{video.stem}_t{frame.time_s:010.3f}.png"
                (folder / name).parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(frame.rgb).save(folder / name, format="PNG", optimize=False)
                images.append(coco.CocoImage(name, frame.rgb.shape[1], frame.rgb.shape[0], (), video_id))
        result.frames = len(images)
        if layout == "coco":
            coco.write(folder / "annotations.json", images, classes)
        else:
            yolo.write(folder, [(i.file_name.removeprefix("images/"), i.width, i.height, []) for i in images], classes)
    return result
