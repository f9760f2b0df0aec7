"""Enumerate labelled images from each kind of data source in the spec, in a stable order."""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from compiler.spec.data import ImageFolderSource, ManifestSource, SklearnDigitsSource, Source, VideoSource
from stages._imageio import UnreadableImage, decode_file, from_array

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}


@dataclass(frozen=True)
class RawItem:
    label: str
    source: str
    """Which source it came from, e.g. `sklearn_digits` or `image_folder:data/raw/extra`."""
    origin: str
    """The file (or data-set index) it came from, shown in reports."""
    read: Callable[[], Image.Image]
    """Decodes the image; raises UnreadableImage with the reason."""


class UnsupportedSource(Exception):
    pass


def iter_source(source: Source, root: Path) -> Iterator[RawItem]:
    if isinstance(source, SklearnDigitsSource):
        yield from _sklearn_digits(source)
    elif isinstance(source, ImageFolderSource):
        yield from _image_folder(root / source.path, f"image_folder:{source.path}")
    elif isinstance(source, ManifestSource):
        yield from _manifest(root / source.path, f"manifest:{source.path}")
    elif isinstance(source, VideoSource):
        raise UnsupportedSource(f"video source {source.path}: this version of the ingest stage cannot read video")


def _sklearn_digits(source: SklearnDigitsSource) -> Iterator[RawItem]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    taken: dict[int, int] = {}
    for index, (pixels, target) in enumerate(zip(digits.images, digits.target, strict=True)):
        taken[target] = taken.get(target, 0) + 1
        if source.max_images_per_class is not None and taken[target] > source.max_images_per_class:
            continue
        grey = (pixels * (255.0 / 16.0)).round().astype("uint8")  # values are 0..16 ink levels
        yield RawItem(str(target), "sklearn_digits", f"sklearn_digits#{index}", lambda g=grey: from_array(g))


def _image_folder(folder: Path, source: str) -> Iterator[RawItem]:
    if not folder.is_dir():
        raise UnsupportedSource(f"{source}: folder {folder} does not exist")
    for class_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        for file in sorted(p for p in class_dir.rglob("*") if p.is_file()):
            if file.suffix.lower() in IMAGE_SUFFIXES:
                yield RawItem(class_dir.name, source, file.as_posix(), lambda f=file: decode_file(f))


def _manifest(csv_path: Path, source: str) -> Iterator[RawItem]:
    if not csv_path.is_file():
        raise UnsupportedSource(f"{source}: file {csv_path} does not exist")
    with csv_path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if not {"path", "label"} <= set(reader.fieldnames or []):
            raise UnsupportedSource(f"{source}: needs a header with columns path,label (got {reader.fieldnames})")
        for row in reader:
            file = csv_path.parent / row["path"]
            yield RawItem(row["label"].strip(), source, file.as_posix(), lambda f=file: _decode_or_missing(f))


def _decode_or_missing(file: Path) -> Image.Image:
    if not file.is_file():
        raise UnreadableImage("file listed in the manifest does not exist")
    return decode_file(file)
