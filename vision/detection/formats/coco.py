"""COCO instances JSON: `images` (id, file_name, width, height), `annotations` (image_id, category_id,
bbox [x, y, width, height] in pixels, iscrowd) and `categories` (id, name). Read and written here."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from core.spec.data import CocoSource
from vision.data.sources import RepoFiles, UnsupportedSource
from vision.detection.formats import BoxProblem, LabelledImage, RawBox, SourceProblems, number


def read(source: CocoSource, root: Path, files: RepoFiles, problems: SourceProblems) -> Iterator[LabelledImage]:
    json_path = root / source.annotations
    name = f"coco:{source.annotations}"
    data = _load(json_path, name)
    folder = root / source.images if source.images else json_path.parent
    categories = {c.get("id"): str(c.get("name", "")) for c in data["categories"] if isinstance(c, dict)}
    images = [image for image in data["images"] if isinstance(image, dict)]
    known_ids = {image.get("id") for image in images}
    per_image: dict[Any, list[tuple[int, dict]]] = {}
    for index, annotation in enumerate(data.get("annotations") or []):
        image_id = annotation.get("image_id") if isinstance(annotation, dict) else None
        if image_id not in known_ids:
            problems.orphans.append(BoxProblem(f"{json_path.name}#annotation {index}",
                                               f"image_id {image_id!r} is not in images"))
            continue
        per_image.setdefault(image_id, []).append((index, annotation))
    for image in images:
        file_name = str(image.get("file_name", ""))
        file = folder / file_name
        boxes, bad = _boxes(per_image.get(image.get("id"), []), categories, json_path.name)
        width, height = number(image.get("width")), number(image.get("height"))
        declared = (int(width), int(height)) if width and height else None
        yield LabelledImage(name, file.as_posix(), files.reader(file, "file named in the COCO JSON does not exist"),
                            tuple(boxes), tuple(bad), _group(source, image, file_name), declared)


def _load(path: Path, name: str) -> dict[str, Any]:
    if not path.is_file():
        raise UnsupportedSource(f"{name}: file {path} does not exist")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise UnsupportedSource(f"{name}: not a JSON file ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("images"), list) or \
            not isinstance(data.get("categories"), list):
        raise UnsupportedSource(f"{name}: not a COCO instances file (needs lists 'images' and 'categories')")
    return data


def _boxes(annotations: list[tuple[int, dict]], categories: dict[Any, str], file: str
           ) -> tuple[list[RawBox], list[BoxProblem]]:
    boxes, bad = [], []
    for index, annotation in annotations:
        origin = f"{file}#annotation {index}"
        bbox = annotation.get("bbox")
        values = [number(v) for v in bbox] if isinstance(bbox, list) and len(bbox) == 4 else None
        if annotation.get("category_id") not in categories:
            bad.append(BoxProblem(origin, f"category_id {annotation.get('category_id')!r} is not in categories"))
        elif annotation.get("iscrowd") in (1, True):
            bad.append(BoxProblem(origin, "crowd region (iscrowd: 1): a group of objects, not one instance"))
        elif values is None or any(v is None for v in values):
            bad.append(BoxProblem(origin, f"bbox is not four numbers [x, y, width, height] (got {bbox!r})"))
        else:
            x, y, w, h = values
            boxes.append(RawBox(categories[annotation["category_id"]], x, y, x + w, y + h, origin))
    return boxes, bad


def _group(source: CocoSource, image: dict, file_name: str) -> str:
    if source.group_by == "folder":
        return str(PurePosixPath(file_name).parent)
    if source.group_by == "auto" and image.get("video_id") is not None:
        return f"video {image['video_id']}"
    return ""


@dataclass(frozen=True)
class CocoImage:
    """An image to write: its file name relative to the JSON's image folder, size and xyxy pixel boxes."""

    file_name: str
    width: int
    height: int
    boxes: tuple[tuple[str, float, float, float, float], ...]
    video_id: int | None = None


def write(path: Path, images: list[CocoImage], classes: list[str]) -> None:
    """A COCO instances JSON (ids in list order, categories numbered from 1 as COCO does)."""
    category = {name: i + 1 for i, name in enumerate(classes)}
    records, annotations = [], []
    for image_id, image in enumerate(images, start=1):
        record = {"id": image_id, "file_name": image.file_name, "width": image.width, "height": image.height}
        records.append(record | ({"video_id": image.video_id} if image.video_id is not None else {}))
        for label, x1, y1, x2, y2 in image.boxes:
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": category[label],
                                "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1), "iscrowd": 0})
    document = {"images": records, "annotations": annotations,
                "categories": [{"id": i, "name": n, "supercategory": "object"} for n, i in category.items()]}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
