"""ingest (detection): every coco, yolo and voc source -> one canonical image set, an image manifest and a box
table, whatever the source format.

Images land in `images/<sha256[:16]>.png` and are listed in `manifest.csv` with the same columns as for
classification; an image's `label` there is its stratum for the split: the rarest class among its boxes
(by boxes in the whole set, vision.data.strata), `_none` for an image without boxes (a negative), `_mixed`
where that stratum has too few images to split. `boxes.csv` holds one row per kept box (path, class, x1, y1,
x2, y2 in pixels, 0-based). Images that cannot be used are quarantined as
for classification (`quarantine.csv`); boxes that cannot be used (unknown class, no area, outside the image
beyond data.boxes.clip_tolerance_px, too small, duplicates, malformed rows) go to `box_quarantine.csv` with
their reason, and their image keeps its good boxes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from core.fsutil import atomic_directory, write_csv, write_json
from core.progress import Progress
from core.spec.data import BoxSection, Source
from stages.ingest import Quarantined, Record, decoded, size_problem, write_tables
from stages.runtime import StageContext, StageFailure, run_stage
from vision.data.imageio import PixelLimits
from vision.data.sources import RepoFiles, SourceStats, UnsupportedSource
from vision.data.strata import NEGATIVE, rarest_label_strata
from vision.detection.boxes import BOX_FIELDS, Box, check_boxes
from vision.detection.formats import LabelledImage, SourceProblems, iter_box_source

BOX_QUARANTINE_FIELDS = ("origin", "source", "image", "reason")


@dataclass(frozen=True)
class QuarantinedBox:
    origin: str
    source: str
    image: str
    reason: str


@dataclass
class BoxIngest:
    records: list[Record] = field(default_factory=list)
    boxes: dict[str, list[Box]] = field(default_factory=dict)
    """Canonical image path -> its kept boxes."""
    quarantined: list[Quarantined] = field(default_factory=list)
    quarantined_boxes: list[QuarantinedBox] = field(default_factory=list)
    duplicates_skipped: int = 0
    files_skipped: int = 0

    def box_rows(self) -> list[dict[str, object]]:
        return [box.row(path) for path in sorted(self.boxes) for box in self.boxes[path]]

    def summary(self) -> dict[str, object]:
        instances = Counter(box.label for boxes in self.boxes.values() for box in boxes)
        images_with = Counter(label for boxes in self.boxes.values() for label in {box.label for box in boxes})
        read = sum(instances.values()) + len(self.quarantined_boxes)
        seen = len(self.records) + len(self.quarantined) + self.duplicates_skipped
        return {
            "images": len(self.records),
            "negative_images": sum(1 for r in self.records if not self.boxes.get(r.path)),
            "boxes": sum(instances.values()),
            "quarantined": len(self.quarantined),
            "quarantined_boxes": len(self.quarantined_boxes),
            "quarantined_box_fraction": round(len(self.quarantined_boxes) / read, 6) if read else 0.0,
            "corrupt_fraction": round(len(self.quarantined) / seen, 6) if seen else 0.0,
            "exact_duplicates_skipped": self.duplicates_skipped,
            "files_skipped": self.files_skipped,
            "instances_per_class": dict(sorted(instances.items())),
            "images_per_class": dict(sorted(images_with.items())),
        }


def ingest_boxes(items: Iterable[LabelledImage], classes: list[str], min_size_px: tuple[int, int],
                 rules: BoxSection, out_dir: Path) -> BoxIngest:
    """Decode, check and store every image and its boxes under `out_dir/images/`; the first copy of identical
    pixels wins (a later copy with other boxes is quarantined: one of the two annotations is wrong)."""
    result = BoxIngest()
    by_sha: dict[str, tuple[Record, tuple[Box, ...]]] = {}
    for item in items:
        image = decoded(item.read)
        reason = image if isinstance(image, str) else (
            size_problem(image.width, image.height, min_size_px) or _declared_size_problem(item, image.width,
                                                                                          image.height))
        if reason is not None:
            result.quarantined.append(Quarantined(item.origin, item.source, reason))
            continue
        kept, problems = check_boxes(item.boxes, image.width, image.height, classes, rules)
        signature = tuple(kept)
        if image.sha256 in by_sha:
            first, first_boxes = by_sha[image.sha256]
            if first_boxes == signature:
                result.duplicates_skipped += 1
            else:
                result.quarantined.append(Quarantined(item.origin, item.source, f"same pixels as {first.origin}, "
                                                      "whose boxes differ"))
            continue
        relative = f"images/{image.sha256[:16]}.png"
        (out_dir / relative).parent.mkdir(parents=True, exist_ok=True)
        (out_dir / relative).write_bytes(image.png)
        record = Record(relative, NEGATIVE, item.source, item.origin, item.group or item.origin, image.sha256,
                        image.width, image.height, image.mode,
                        **asdict(item.provenance))
        by_sha[image.sha256] = (record, signature)
        result.records.append(record)
        result.boxes[relative] = kept
        result.quarantined_boxes.extend(QuarantinedBox(p.origin, item.source, item.origin, p.reason)
                                        for p in (*item.problems, *problems))
    result.records = _with_strata(result.records, result.boxes)
    return result


def _declared_size_problem(item: LabelledImage, width: int, height: int) -> str | None:
    if item.declared_size is None or item.declared_size == (width, height):
        return None
    return (f"the annotation says {item.declared_size[0]}x{item.declared_size[1]} px, the file is {width}x{height}: "
            "its boxes would land in the wrong place")


def _with_strata(records: list[Record], boxes: dict[str, list[Box]]) -> list[Record]:
    """Each image labelled with its stratum for the split: its rarest class by boxes (vision.data.strata)."""
    instances = Counter(box.label for kept in boxes.values() for box in kept)
    strata = rarest_label_strata({r.path: [box.label for box in boxes.get(r.path, [])] for r in records}, instances)
    return [Record(**{**asdict(r), "label": strata[r.path]}) for r in records]


def main(ctx: StageContext) -> None:
    sources: list[Source] = ctx.spec("data.sources")
    classes: list[str] = ctx.spec("classes")
    rules = BoxSection(clip_tolerance_px=ctx.spec("data.boxes.clip_tolerance_px"),
                       min_side_px=ctx.spec("data.boxes.min_side_px"),
                       duplicate_iou=ctx.spec("data.boxes.duplicate_iou"))
    stats, orphans = SourceStats(), SourceProblems()
    files = RepoFiles(ctx.root.resolve(), PixelLimits(max_pixels=ctx.spec("data.quality.max_image_pixels")))
    with atomic_directory(ctx.output("images")) as out:
        try:
            items = (item for source in sources for item in iter_box_source(source, ctx.root, files, stats, orphans))
            with Progress("ingest", None, unit="image") as shown:
                result = ingest_boxes(shown.iterate(items), classes, tuple(ctx.spec("data.quality.min_size_px")),
                                      rules, out)
        except UnsupportedSource as exc:
            raise StageFailure(str(exc)) from None
        result.files_skipped = len(stats.skipped)
        result.quarantined_boxes.extend(QuarantinedBox(p.origin, "", "", p.reason) for p in orphans.orphans)
        write_tables(out, ctx, stats.skipped, result.records, result.quarantined)
        write_csv(out / ctx.inside("boxes"), result.box_rows(), BOX_FIELDS)
        write_csv(out / ctx.inside("box_quarantine"), [asdict(q) for q in result.quarantined_boxes],
                  BOX_QUARANTINE_FIELDS)
    summary = result.summary()
    write_json(ctx.output("summary"), summary)
    print(f"ingest: {summary['images']} images ({summary['negative_images']} without boxes), {summary['boxes']} "
          f"boxes; quarantined {summary['quarantined']} images (see {ctx.output('quarantine')}) and "
          f"{summary['quarantined_boxes']} boxes (see {ctx.output('box_quarantine')}), {summary['files_skipped']} "
          f"files skipped (see {ctx.output('skipped')})")


if __name__ == "__main__":
    from core.contracts.detection.ingest import CONTRACT

    run_stage(CONTRACT, main)
