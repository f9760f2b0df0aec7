"""The unlabelled pool: images from folders, video frames and the server's captures, admitted the way ingest
admits labelled images (decoded within the pixel limits, links that leave the repository refused, too-small
images quarantined), then rid of exact and near-duplicates of the labelled set and of each other.

Each pool image keeps where it came from (`meta`: a repository path, or a video and a time): the queue
hands that to Label Studio and the `labelstudio` source reads the image back from it after labelling.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from core.spec.loop import PoolCaptures, PoolSource, PoolVideo
from runtime.images import ImageTooLarge
from vision.data.duplicates import DuplicateRule, duplicate_pairs, duplicated_in
from vision.data.imageio import CanonicalImage, RefusedFile, UnreadableImage, canonicalize, from_array
from vision.data.sources import IMAGE_SUFFIXES, RepoFiles, Skipped, SourceStats, UnsupportedSource
from vision.data.video import VIDEO_SUFFIXES, sample_frames

CAPTURE_RECORD_BYTES = 64_000
"""A capture's JSON record is read only up to this size (it is written by the server, but lives on disk)."""


@dataclass(frozen=True)
class PoolItem:
    source: str
    origin: str
    read: Callable[[], Image.Image]
    meta: dict[str, Any]
    """Where the image can be read again: {"path": <repo path>} or {"video": <repo path>, "time_s": <s>}, plus
    a capture's record under "capture"."""


def iter_pool(source: PoolSource, root: Path, files: RepoFiles, static_flow_px: float,
              stats: SourceStats) -> Iterator[PoolItem]:
    folder = root / source.path
    name = f"{source.kind}:{source.path}"
    if not folder.exists():
        hint = " (run `autodl captures fetch`)" if isinstance(source, PoolCaptures) else ""
        raise UnsupportedSource(f"pool {name}: {folder} does not exist{hint}")
    if isinstance(source, PoolVideo):
        yield from _video(source, folder, root, static_flow_px, stats)
        return
    for file in _walk(folder, name, stats):
        if file.suffix.lower() not in IMAGE_SUFFIXES:
            if not (isinstance(source, PoolCaptures) and file.suffix == ".json"):
                stats.skipped.append(Skipped(file.as_posix(), name, f"not an image file name ('{file.suffix}')"))
            continue
        meta: dict[str, Any] = {"path": file.relative_to(root).as_posix()}
        if isinstance(source, PoolCaptures):
            record = _capture_record(file.with_suffix(".json"))
            if isinstance(record, str):
                stats.skipped.append(Skipped(file.as_posix(), name, record))
                continue
            meta["capture"] = record
        yield PoolItem(name, file.as_posix(), files.reader(file), meta)


def _walk(folder: Path, name: str, stats: SourceStats) -> Iterator[Path]:
    """Files under `folder` in a stable order; links to folders are listed as skipped, never followed."""
    if folder.is_file():
        yield folder
        return
    for parent, folders, names in os.walk(folder):
        here = Path(parent)
        for sub in sorted(folders):
            if (here / sub).is_symlink():
                stats.skipped.append(Skipped((here / sub).as_posix(), name, "symbolic link to a folder: not followed"))
        folders.sort()
        yield from (here / n for n in sorted(names))


def _video(source: PoolVideo, path: Path, root: Path, static_flow_px: float, stats: SourceStats
           ) -> Iterator[PoolItem]:
    name = f"video:{source.path}"
    videos = [f for f in _walk(path, name, stats) if f.suffix.lower() in VIDEO_SUFFIXES]
    for video in videos:
        try:
            frames, dropped = sample_frames(video, source.fps, static_flow_px)
        except ValueError as exc:
            stats.skipped.append(Skipped(video.as_posix(), name, f"unreadable video ({exc})"))
            continue
        stats.static_frames_dropped += dropped
        relative = video.relative_to(root).as_posix()
        for frame in frames:
            yield PoolItem(name, f"{video.as_posix()}#t={frame.time_s:.3f}s", lambda f=frame: from_array(f.rgb),
                           {"video": relative, "time_s": frame.time_s})


def _capture_record(file: Path) -> dict[str, Any] | str:
    if not file.is_file():
        return "capture without its JSON record"
    try:
        with file.open("rb") as handle:
            raw = handle.read(CAPTURE_RECORD_BYTES + 1)
        if len(raw) > CAPTURE_RECORD_BYTES:
            return f"capture record larger than {CAPTURE_RECORD_BYTES} bytes"
        record = json.loads(raw)
    except (OSError, ValueError) as exc:
        return f"capture record is not JSON ({exc})"
    if not isinstance(record, dict):
        return "capture record is not a JSON object"
    keep = ("reason", "model_version", "captured_at", "scores", "ood_score", "sha256")
    return {k: record[k] for k in keep if k in record}


@dataclass
class Admitted:
    """Pool images that passed the checks, and one row per pool image for `pool.csv`."""

    items: list[PoolItem] = field(default_factory=list)
    images: list[CanonicalImage] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)

    def refuse(self, item: PoolItem, status: str, reason: str, sha256: str = "") -> None:
        self.rows.append({"origin": item.origin, "source": item.source, "sha256": sha256, "status": status,
                          "reason": reason})


def admit(items: Iterator[PoolItem], min_size_px: tuple[int, int], labelled_sha: set[str]) -> Admitted:
    """Decode and check every pool item; exact copies of labelled images or of earlier pool images are
    left out with the reason."""
    found = Admitted()
    seen: dict[str, str] = {}
    for item in items:
        try:
            image = canonicalize(item.read())
        except ImageTooLarge as exc:
            found.refuse(item, "quarantined", f"too large: {exc} (data.quality.max_image_pixels)")
            continue
        except (RefusedFile, UnreadableImage) as exc:
            found.refuse(item, "quarantined", str(exc) if isinstance(exc, RefusedFile) else f"unreadable image ({exc})")
            continue
        if image.width < min_size_px[0] or image.height < min_size_px[1]:
            found.refuse(item, "quarantined", f"image is {image.width}x{image.height}, smaller than min_size_px "
                         f"{min_size_px[0]}x{min_size_px[1]}", image.sha256)
        elif image.sha256 in labelled_sha:
            found.refuse(item, "labelled", "the same pixels are in the labelled set", image.sha256)
        elif image.sha256 in seen:
            found.refuse(item, "duplicate", f"the same pixels as {seen[image.sha256]}", image.sha256)
        else:
            seen[image.sha256] = item.origin
            found.items.append(item)
            found.images.append(image)
    return found


def near_duplicates(pool: np.ndarray, labelled: np.ndarray, rule: DuplicateRule) -> dict[int, str]:
    """Pool rows to leave out, with why: near-duplicates (under the rule clean chose) of a labelled image, and of
    an earlier pool image (the first of each group stays)."""
    labelled_copies = np.flatnonzero(duplicated_in(pool, labelled, rule))
    dropped = {int(i): "near-duplicate of a labelled image" for i in labelled_copies}
    for i, j, similarity in duplicate_pairs(pool, rule):
        if i not in dropped and j not in dropped:
            dropped[j] = f"near-duplicate of pool image {i} (cosine {similarity:.3f})"
    return dropped
