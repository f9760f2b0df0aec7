"""Enumerate labelled images from each kind of data source in the spec, in a stable order."""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image

from core.spec.data import (
    CropsSource,
    ImageFolderSource,
    LabelStudioSource,
    ManifestSource,
    SklearnDigitsSource,
    Source,
    VideoSource,
)
from vision.data.imageio import PixelLimits, RefusedFile, UnreadableImage, decode_file, from_array
from vision.data.labelstudio import (
    SINGLE_CHOICE,
    ExportError,
    LabelKind,
    Labelled,
    image_key,
    interpret,
    local_path,
    read_export,
    with_queue_predictions,
)
from vision.data.tags import TAG_SEPARATOR, parse_tags
from vision.data.video import LabelledSpan, frame_at, label_at, read_spans, sample_frames, videos_by_class

if TYPE_CHECKING:
    from vision.data.ingested import IngestedImage

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}


@dataclass(frozen=True)
class Provenance:
    """Where an image's label came from, for images labelled through the data loop (empty otherwise)."""

    round: str = ""
    """The loop round: the export file's place among the source's files, 1 first."""
    annotator: str = ""
    """`labelstudio:<user>` for a person, `model:<version>` for an accepted prediction."""
    confirmed: str = ""
    """`true` when a person gave or confirmed the label, `false` for an auto-label."""
    train_only: bool = False
    """Never validation or test: auto-labels, and images the loop chose."""
    fixed_split: str = ""
    """The split the image must land in (`train`, `val`, `test`): a crop keeps its source image's split in its
    detection project; empty: the split stage decides."""


@dataclass(frozen=True)
class RawItem:
    label: str
    source: str
    """Which source it came from, e.g. `sklearn_digits` or `image_folder:data/raw/extra`."""
    origin: str
    """The file (or data-set index) it came from, shown in reports."""
    read: Callable[[], Image.Image]
    """Decodes the image; raises UnreadableImage with the reason."""
    group: str = ""
    """Images of one group (frames of one video) always land in the same split; empty = the image alone."""
    provenance: Provenance = Provenance()


class UnsupportedSource(Exception):
    pass


@dataclass(frozen=True)
class Skipped:
    """A file or folder a source did not read, and why: listed so nothing is left out silently."""

    origin: str
    source: str
    reason: str


@dataclass
class SourceStats:
    """What sources skip on purpose (not quarantined: nothing is wrong with an image)."""

    static_frames_dropped: int = 0
    skipped: list[Skipped] = field(default_factory=list)


def iter_source(source: Source, root: Path, static_flow_px: float = 0.0, stats: SourceStats | None = None,
                classes: list[str] | None = None, limits: PixelLimits | None = None) -> Iterator[RawItem]:
    """Labelled items of one source. A built-in data set yields only the spec's `classes` (a project may
    use some of the ten digits); files on disk yield everything, so stray labels are reported. Every file is
    resolved: a link that dangles or leads out of the repository is quarantined, never opened."""
    stats = stats if stats is not None else SourceStats()
    files = RepoFiles(root.resolve(), limits or PixelLimits())
    if isinstance(source, SklearnDigitsSource):
        yield from _sklearn_digits(source, classes)
    elif isinstance(source, ImageFolderSource):
        yield from _image_folder(root / source.path, f"image_folder:{source.path}", files, stats)
    elif isinstance(source, ManifestSource):
        yield from _manifest(root / source.path, f"manifest:{source.path}", files)
    elif isinstance(source, VideoSource):
        yield from _video(source, root, static_flow_px, stats)
    elif isinstance(source, LabelStudioSource):
        for labelled, origin, read, provenance in labelstudio_items(source, root, files, stats, SINGLE_CHOICE):
            yield RawItem(labelled.label or "", f"labelstudio:{source.path}", origin, read, provenance=provenance)
    elif isinstance(source, CropsSource):
        yield from _crops(source, root, files.limits, stats)


def labelstudio_items(source: LabelStudioSource, root: Path, files: RepoFiles, stats: SourceStats, kind: LabelKind
                      ) -> Iterator[tuple[Labelled, str, Callable[[], Image.Image], Provenance]]:
    """Every labelled task of the source's export file(s), in round order, with a reader for its image. Tasks
    without labels (not annotated yet, skipped, in the queue but not in the export) are listed in
    `stats.skipped` with the reason."""
    name = f"labelstudio:{source.path}"
    exports = _export_files(root, source.path, name)
    queued = _queue_tasks(root, source.queue, name) if source.queue is not None else {}
    exported: set[str] = set()
    for round_number, export in enumerate(exports, start=1):
        for index, item in enumerate(_read(export, name)):
            exported.add(image_key(item) or "")
            origin = f"{export.as_posix()}#task {item.get('id', index)}"
            yield from _labelled(with_queue_predictions(item, queued), origin, round_number, source, root, files,
                                 stats, kind)
    for key, (origin, item) in sorted(_queue_origins(queued).items()):
        if key in exported:
            continue
        if source.accept_predictions:
            yield from _labelled(item, origin, len(exports), source, root, files, stats, kind)
        else:
            stats.skipped.append(Skipped(origin, name, "in the queue but not in the export: nobody annotated it "
                                         "(Label Studio's default export leaves such tasks out)"))


def _labelled(item: dict[str, Any], origin: str, round_number: int, source: LabelStudioSource, root: Path,
              files: RepoFiles, stats: SourceStats, kind: LabelKind
              ) -> Iterator[tuple[Labelled, str, Callable[[], Image.Image], Provenance]]:
    found = interpret(item, kind, source.accept_predictions)
    if isinstance(found, str):
        stats.skipped.append(Skipped(origin, f"labelstudio:{source.path}", found))
        return
    provenance = Provenance(str(round_number), found.annotator, "true" if found.confirmed else "false",
                            source.loop or not found.confirmed)
    yield found, origin, _task_image(found, source, root, files), provenance


def _export_files(root: Path, relative: str, name: str) -> list[Path]:
    path = root / relative
    if not path.exists():
        raise UnsupportedSource(f"{name}: {path} does not exist")
    return sorted(path.glob("*.json")) if path.is_dir() else [path]


def _read(export: Path, name: str) -> list[dict[str, Any]]:
    try:
        return read_export(export)
    except ExportError as exc:
        raise UnsupportedSource(f"{name}: {exc}") from None


def _queue_tasks(root: Path, relative: str, name: str) -> dict[str, dict[str, Any]]:
    """Image key -> the queue task as imported (its predictions are objects), over every queue file."""
    tasks: dict[str, dict[str, Any]] = {}
    for queue in _export_files(root, relative, f"{name} queue"):
        for index, item in enumerate(_read(queue, f"{name} queue")):
            key = image_key(item)
            if key is not None:
                tasks.setdefault(key, {**item, "_origin": f"{queue.as_posix()}#queued task {index}"})
    return tasks


def _queue_origins(queued: dict[str, dict[str, Any]]) -> dict[str, tuple[str, dict[str, Any]]]:
    return {key: (str(item["_origin"]), {k: v for k, v in item.items() if k != "_origin"})
            for key, item in queued.items()}


def _task_image(found: Labelled, source: LabelStudioSource, root: Path, files: RepoFiles
                ) -> Callable[[], Image.Image]:
    """A queue's task names its image's origin (`autodl_path`, or a video and time); any other task is read
    from its `data.image` reference under the source's `images` folder. Remote images are never fetched."""
    video, time_s = found.meta.get("video"), found.meta.get("time_s")
    if isinstance(video, str) and isinstance(time_s, int | float):
        file = root / video

        def read_frame() -> Image.Image:
            problem = files.problem(file)
            if problem is not None:
                raise RefusedFile(problem)
            try:
                return from_array(frame_at(file, float(time_s)))
            except ValueError as exc:
                raise UnreadableImage(f"unreadable video frame ({exc})") from None

        return read_frame
    if isinstance(found.meta.get("path"), str):
        return files.reader(root / found.meta["path"], "the queued image is no longer where the queue found it")
    try:
        relative = local_path(found.image)
    except ValueError as exc:
        return _refuser(str(exc))
    folder = root / source.images if source.images else root
    candidate = folder / relative
    if not candidate.exists() and "-" in relative and found.image.startswith("/data/upload/"):
        candidate = folder / relative.split("-", 1)[1]  # Label Studio prefixes uploads with 8 hex digits
    return files.reader(candidate, f"image {relative!r} of the task is not in {folder.as_posix()}")


@dataclass(frozen=True)
class RepoFiles:
    """How a source opens files on disk: inside the repository only, within the pixel limits."""

    root: Path
    limits: PixelLimits

    def problem(self, file: Path) -> str | None:
        """Why `file` must not be opened, or None."""
        if file.is_symlink() and not file.exists():
            return f"dangling symbolic link (-> {os.readlink(file)})"
        if not file.exists():
            return None
        real = file.resolve()
        if not real.is_relative_to(self.root):
            how = "symbolic link" if file.is_symlink() or file.parent.resolve() != file.parent.absolute() else "path"
            return f"{how} leaves the repository (-> {real}); copy the file in or DVC-import it"
        return None

    def reader(self, file: Path, missing: str = "file does not exist") -> Callable[[], Image.Image]:
        def read() -> Image.Image:
            problem = self.problem(file)
            if problem is not None:
                raise RefusedFile(problem)
            if not file.is_file():
                raise UnreadableImage(missing)
            return decode_file(file, self.limits)

        return read


def _sklearn_digits(source: SklearnDigitsSource, classes: list[str] | None) -> Iterator[RawItem]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    taken: dict[int, int] = {}
    for index, (pixels, target) in enumerate(zip(digits.images, digits.target, strict=True)):
        if classes is not None and str(target) not in classes:
            continue
        taken[target] = taken.get(target, 0) + 1
        if source.max_images_per_class is not None and taken[target] > source.max_images_per_class:
            continue
        grey = (pixels * (255.0 / 16.0)).round().astype("uint8")  # values are 0..16 ink levels
        yield RawItem(str(target), "sklearn_digits", f"sklearn_digits#{index}", lambda g=grey: from_array(g))


def _image_folder(folder: Path, source: str, files: RepoFiles, stats: SourceStats) -> Iterator[RawItem]:
    """`<folder>/<class>/**/<image>`. Symbolic links to folders are not followed; other files, links to
    folders and files outside any class folder are listed in `stats.skipped` with the reason."""
    if not folder.is_dir():
        raise UnsupportedSource(f"{source}: folder {folder} does not exist")
    for entry in sorted(folder.iterdir()):
        if entry.is_symlink() and entry.is_dir():
            stats.skipped.append(Skipped(entry.as_posix(), source, "symbolic link to a folder: not followed "
                                         "(copy the folder in, or list it as its own source)"))
        elif entry.is_dir():
            yield from _class_folder(entry, source, files, stats)
        else:
            stats.skipped.append(Skipped(entry.as_posix(), source, "not inside a class folder"))


def _class_folder(class_dir: Path, source: str, files: RepoFiles, stats: SourceStats) -> Iterator[RawItem]:
    for parent, folders, names in os.walk(class_dir):  # os.walk does not follow links to folders
        here = Path(parent)
        for name in sorted(folders):
            if (here / name).is_symlink():
                stats.skipped.append(Skipped((here / name).as_posix(), source, "symbolic link to a folder: not "
                                             "followed (copy the folder in, or list it as its own source)"))
        folders.sort()
        for name in sorted(names):
            file = here / name
            if file.suffix.lower() not in IMAGE_SUFFIXES:
                stats.skipped.append(Skipped(file.as_posix(), source, f"not an image file name (suffix "
                                             f"'{file.suffix}'; images end in {', '.join(sorted(IMAGE_SUFFIXES))})"))
            else:
                yield RawItem(class_dir.name, source, file.as_posix(), files.reader(file))


def _manifest(csv_path: Path, source: str, files: RepoFiles) -> Iterator[RawItem]:
    if not csv_path.is_file():
        raise UnsupportedSource(f"{source}: file {csv_path} does not exist")
    with csv_path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        columns = set(reader.fieldnames or [])
        if "path" not in columns or not columns & {"label", "tags"}:
            raise UnsupportedSource(f"{source}: needs a header with columns path,label (one class per image) or "
                                    f"path,tags (tags separated by '{TAG_SEPARATOR}') (got {reader.fieldnames})")
        for row in reader:
            file = csv_path.parent / row["path"]
            # a tagged image's label is its tags in canonical order, so equal sets compare equal
            label = row["label"].strip() if "label" in columns else TAG_SEPARATOR.join(parse_tags(row["tags"] or ""))
            yield RawItem(label, source, file.as_posix(),
                          files.reader(file, "file listed in the manifest does not exist"))


def _video(source: VideoSource, root: Path, static_flow_px: float, stats: SourceStats) -> Iterator[RawItem]:
    path = root / source.path
    if not path.exists():
        raise UnsupportedSource(f"video:{source.path}: {path} does not exist")
    if source.label_from == "manifest":
        spans = _spans(root / (source.manifest or ""))
        videos = sorted({span.video for span in spans})
        jobs = [(None, video) for video in videos]
    else:
        jobs = list(videos_by_class(path)) if path.is_dir() else [(path.parent.name, path)]
    for folder_label, video in jobs:
        origin = video.as_posix()
        try:
            frames, dropped = sample_frames(video, source.fps, static_flow_px)
        except ValueError as exc:
            yield RawItem(folder_label or "", f"video:{source.path}", origin, _raiser(str(exc)), origin)
            continue
        stats.static_frames_dropped += dropped
        for frame in frames:
            label = folder_label if folder_label is not None else label_at(spans, video, frame.time_s)
            yield RawItem(label or "", f"video:{source.path}", f"{origin}#t={frame.time_s:.3f}s",
                          lambda f=frame: from_array(f.rgb), origin)


def _spans(manifest: Path) -> list[LabelledSpan]:
    if not manifest.is_file():
        raise UnsupportedSource(f"video manifest {manifest} does not exist")
    try:
        return read_spans(manifest)
    except ValueError as exc:
        raise UnsupportedSource(str(exc)) from None


def _refuser(reason: str) -> Callable[[], Image.Image]:
    def read() -> Image.Image:
        raise RefusedFile(reason)

    return read


def _raiser(reason: str) -> Callable[[], Image.Image]:
    def read() -> Image.Image:
        raise UnreadableImage(f"unreadable video ({reason})")

    return read


def _crops(source: CropsSource, root: Path, limits: PixelLimits, stats: SourceStats) -> Iterator[RawItem]:
    """One item per box of the detection project's ingest, in its box table's order, each in its image's split
    there; the boxes of an image that project's cleaning removed are listed as skipped."""
    from vision.data.crops import BoxRow, CropRule, crops

    name = f"crops:{source.project}"
    rows, split_of = [], {}
    for image in kept_images(source.project, source.inputs(), root, name, stats):
        split_of[image.path] = (image.split, image.group)
        rows.extend(BoxRow(image.path, box.category if source.label == "category" else box.label, box.x1, box.y1,
                           box.x2, box.y2) for box in image.boxes)
    ingest = root / source.inputs()[0]
    for crop in crops(rows, ingest, CropRule(source.padding, source.min_size_px), limits):
        split, group = split_of[crop.group]
        yield RawItem(crop.label, name, crop.origin, crop.read, group=f"{name}:{group}",
                      provenance=Provenance(fixed_split=split))


def kept_images(project: str, inputs: tuple[str, str], root: Path, source: str, stats: SourceStats
                ) -> Iterator[IngestedImage]:
    """The images of `project` that have a split there (`inputs`: its ingest folder and split table); each one its
    cleaning removed is listed in `stats.skipped`. A project whose stages have not run is an UnsupportedSource."""
    from vision.data.ingested import ingested_images

    ingest, split_table = (root / path for path in inputs)
    if not (ingest / "manifest.csv").is_file() or not split_table.is_file():
        raise UnsupportedSource(f"{source}: {ingest}/manifest.csv or {split_table} does not exist; run that "
                                f"project's stages first (`dvc repro` runs them before this project's ingest)")
    for image in ingested_images(ingest, split_table):
        if image.split:
            yield image
        else:
            stats.skipped.append(Skipped(f"data/{project}/ingest/{image.path}", source,
                                         f"removed by {project}'s cleaning (a near-duplicate of an image kept "
                                         f"there): its {len(image.boxes)} boxes have no split to keep"))
