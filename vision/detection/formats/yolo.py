"""The Ultralytics (and CVAT "Ultralytics YOLO") layout: `data.yaml` with the class `names`, images under
`images/` and, for each, a text file under `labels/` at the same relative path with one `class cx cy w h`
row per box, normalised to the image's size. An image without a label file has no boxes (a negative)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from ruamel.yaml import YAML, YAMLError

from core.spec.data import YoloSource
from vision.data.sources import IMAGE_SUFFIXES, RepoFiles, Skipped, SourceStats, UnsupportedSource
from vision.detection.formats import BoxProblem, LabelledImage, RawBox, number

MAX_LABEL_FILE_BYTES = 4 * 1024 * 1024
"""A label file larger than this is not read (a box row is ~40 bytes: 100,000 boxes per image)."""


def read(source: YoloSource, root: Path, files: RepoFiles, stats: SourceStats) -> Iterator[LabelledImage]:
    folder = root / source.path
    name = f"yolo:{source.path}"
    names = class_names(folder / "data.yaml", name)
    images_dir = folder / "images"
    if not images_dir.is_dir():
        raise UnsupportedSource(f"{name}: folder {images_dir} does not exist")
    for file in sorted(p for p in images_dir.rglob("*") if p.is_file() or p.is_symlink()):
        if file.suffix.lower() not in IMAGE_SUFFIXES:
            stats.skipped.append(Skipped(file.as_posix(), name, f"not an image file name (suffix '{file.suffix}')"))
            continue
        label_file = (folder / "labels" / file.relative_to(images_dir)).with_suffix(".txt")
        boxes, bad = _labels(label_file, names, folder)
        yield LabelledImage(name, file.as_posix(), files.reader(file), tuple(boxes), tuple(bad))


def class_names(data_yaml: Path, name: str) -> list[str]:
    """`names` as a list (Ultralytics writes a list or an {id: name} mapping)."""
    if not data_yaml.is_file():
        raise UnsupportedSource(f"{name}: {data_yaml} does not exist (it lists the class names)")
    try:
        data = YAML(typ="safe", pure=True).load(data_yaml.read_text(encoding="utf-8"))
    except (YAMLError, UnicodeDecodeError) as exc:
        raise UnsupportedSource(f"{name}: {data_yaml} is not YAML ({str(exc).splitlines()[0]})") from None
    names = data.get("names") if isinstance(data, dict) else None
    if isinstance(names, dict) and sorted(names) == list(range(len(names))):
        return [str(names[i]) for i in range(len(names))]
    if isinstance(names, list):
        return [str(n) for n in names]
    raise UnsupportedSource(f"{name}: {data_yaml} needs `names`: a list, or a mapping from 0, 1, ... to names")


def _labels(label_file: Path, names: list[str], folder: Path) -> tuple[list[RawBox], list[BoxProblem]]:
    if not label_file.is_file():
        return [], []
    shown = label_file.relative_to(folder).as_posix()
    if label_file.stat().st_size > MAX_LABEL_FILE_BYTES:
        return [], [BoxProblem(shown, f"label file larger than {MAX_LABEL_FILE_BYTES} bytes: not read")]
    boxes, bad = [], []
    text = label_file.read_text(encoding="utf-8", errors="replace")
    for line_number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        origin = f"{shown}:{line_number}"
        values = [number(f) for f in fields[1:]]
        class_id = int(fields[0]) if fields[0].isdigit() else None
        if len(fields) != 5 or any(v is None for v in values):
            bad.append(BoxProblem(origin, f"not a box row `class cx cy w h` (got {line.strip()[:80]!r})"))
        elif class_id is None or class_id >= len(names):
            bad.append(BoxProblem(origin, f"class id {fields[0]!r} is not in data.yaml names (0..{len(names) - 1})"))
        else:
            cx, cy, w, h = values
            boxes.append(RawBox(names[class_id], cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2, origin,
                                normalised=True))
    return boxes, bad


def write(folder: Path, images: list[tuple[str, int, int, list[tuple[str, float, float, float, float]]]],
          classes: list[str]) -> None:
    """`data.yaml` and one label file per image (`images` holds (path relative to images/, width, height,
    xyxy pixel boxes); the image files themselves are the caller's)."""
    folder.mkdir(parents=True, exist_ok=True)
    names = "".join(f"  {i}: {name!r}\n" for i, name in enumerate(classes))
    (folder / "data.yaml").write_text(f"path: .\ntrain: images\nval: images\nnames:\n{names}", encoding="utf-8")
    index = {name: i for i, name in enumerate(classes)}
    for relative, width, height, boxes in images:
        label_file = (folder / "labels" / relative).with_suffix(".txt")
        label_file.parent.mkdir(parents=True, exist_ok=True)
        rows = [f"{index[label]} {(x1 + x2) / 2 / width:.6f} {(y1 + y2) / 2 / height:.6f} "
                f"{(x2 - x1) / width:.6f} {(y2 - y1) / height:.6f}\n" for label, x1, y1, x2, y2 in boxes]
        label_file.write_text("".join(rows), encoding="utf-8")
