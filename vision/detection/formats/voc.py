"""Pascal VOC: one XML file per image under `Annotations/` naming its image in `JPEGImages/`, with `size`
and one `object` (name, bndbox xmin ymin xmax ymax) per box. VOC counts pixels from 1, so xmin and ymin
move by one to the 0-based xyxy used everywhere else (as Detectron2 reads VOC); xmax and ymax stay.
Parsed with defusedxml: entity expansion and external entities are refused."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from xml.sax.saxutils import escape

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import ParseError, fromstring

from core.spec.data import VocSource
from vision.data.sources import RepoFiles, Skipped, SourceStats, UnsupportedSource
from vision.detection.formats import BoxProblem, LabelledImage, RawBox, number

MAX_XML_BYTES = 4 * 1024 * 1024


def read(source: VocSource, root: Path, files: RepoFiles, stats: SourceStats) -> Iterator[LabelledImage]:
    folder = root / source.path
    name = f"voc:{source.path}"
    annotations = folder / "Annotations"
    if not annotations.is_dir():
        raise UnsupportedSource(f"{name}: folder {annotations} does not exist")
    for xml_file in sorted(annotations.glob("*.xml")):
        shown = xml_file.relative_to(folder).as_posix()
        document = _parse(xml_file)
        if isinstance(document, str):
            stats.skipped.append(Skipped(xml_file.as_posix(), name, document))
            continue
        file_name = (document.findtext("filename") or "").strip()
        image = folder / "JPEGImages" / file_name
        boxes, bad = _objects(document, shown)
        width, height = number(document.findtext("size/width")), number(document.findtext("size/height"))
        declared = (int(width), int(height)) if width and height else None
        yield LabelledImage(name, image.as_posix(), files.reader(image, "file named in the XML does not exist"),
                            tuple(boxes), tuple(bad), "", declared)


def _parse(xml_file: Path) -> ET.Element | str:
    """The XML document, or why it cannot be read."""
    if xml_file.stat().st_size > MAX_XML_BYTES:
        return f"annotation larger than {MAX_XML_BYTES} bytes: not read"
    try:
        return fromstring(xml_file.read_bytes())
    except (ParseError, DefusedXmlException) as exc:
        return f"not a usable VOC XML file ({type(exc).__name__}: {str(exc)[:120]})"


def _objects(document: ET.Element, shown: str) -> tuple[list[RawBox], list[BoxProblem]]:
    boxes, bad = [], []
    for index, element in enumerate(document.findall("object")):
        origin = f"{shown}#object {index}"
        label = (element.findtext("name") or "").strip()
        values = [number(element.findtext(f"bndbox/{tag}")) for tag in ("xmin", "ymin", "xmax", "ymax")]
        if any(v is None for v in values):
            bad.append(BoxProblem(origin, "bndbox needs numeric xmin, ymin, xmax and ymax"))
            continue
        xmin, ymin, xmax, ymax = values
        boxes.append(RawBox(label, xmin - 1, ymin - 1, xmax, ymax, origin))
    return boxes, bad


def write(folder: Path, file_name: str, width: int, height: int,
          boxes: list[tuple[str, float, float, float, float]]) -> Path:
    """One annotation file for `JPEGImages/<file_name>` (xyxy 0-based pixel boxes in; VOC's 1-based out)."""
    objects = "".join(
        f"  <object><name>{escape(label)}</name><difficult>0</difficult><bndbox><xmin>{x1 + 1:g}</xmin>"
        f"<ymin>{y1 + 1:g}</ymin><xmax>{x2:g}</xmax><ymax>{y2:g}</ymax></bndbox></object>\n"
        for label, x1, y1, x2, y2 in boxes)
    text = (f"<annotation>\n  <filename>{escape(file_name)}</filename>\n  <size><width>{width}</width>"
            f"<height>{height}</height><depth>3</depth></size>\n{objects}</annotation>\n")
    path = folder / "Annotations" / (Path(file_name).stem + ".xml")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path
