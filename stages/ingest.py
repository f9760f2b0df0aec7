"""ingest: every source in the spec -> one canonical image set plus a manifest.

Images land in `images/<label>/<sha256[:16]>.png`; `manifest.csv` lists
path, label, source, origin, sha256, width, height, mode, and for images labelled
through the data loop their round, annotator, whether a person confirmed the
label, and whether they are for training only. Unreadable files,
images larger than `max_image_pixels` (checked before decoding: decompression
bombs), links that dangle or leave the repository, labels outside `classes` and
images below `min_size_px` are quarantined with a reason in `quarantine.csv` and
never stop the run (the data-quality gate decides). Files a source does not read
(other file types, links to folders) are listed with the reason in `skipped.csv`.
"""

from __future__ import annotations

import difflib
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from PIL import Image

from core.fsutil import atomic_directory, write_csv, write_json
from core.progress import Progress
from core.spec.data import Source
from runtime.images import ImageTooLarge
from stages.runtime import StageContext, StageFailure, run_stage
from vision.data.imageio import CanonicalImage, PixelLimits, RefusedFile, UnreadableImage, canonicalize
from vision.data.sources import RawItem, Skipped, SourceStats, UnsupportedSource, iter_source

MANIFEST_FIELDS = ("path", "label", "source", "origin", "group", "sha256", "width", "height", "mode", "round",
                   "annotator", "confirmed", "train_only", "fixed_split")


@dataclass(frozen=True)
class Record:
    path: str
    label: str
    source: str
    origin: str
    group: str
    sha256: str
    width: int
    height: int
    mode: str
    round: str = ""
    """Data-loop provenance (vision.data.sources.Provenance); empty for images from other sources."""
    annotator: str = ""
    confirmed: str = ""
    train_only: bool = False
    fixed_split: str = ""


@dataclass(frozen=True)
class Quarantined:
    origin: str
    source: str
    reason: str


@dataclass
class IngestResult:
    records: list[Record] = field(default_factory=list)
    quarantined: list[Quarantined] = field(default_factory=list)
    duplicates_skipped: int = 0
    static_frames_dropped: int = 0
    files_skipped: int = 0

    def summary(self) -> dict[str, object]:
        seen = len(self.records) + len(self.quarantined) + self.duplicates_skipped
        return {
            "images": len(self.records),
            "quarantined": len(self.quarantined),
            "exact_duplicates_skipped": self.duplicates_skipped,
            "static_frames_dropped": self.static_frames_dropped,
            "files_skipped": self.files_skipped,
            "corrupt_fraction": round(len(self.quarantined) / seen, 6) if seen else 0.0,
            "per_class": dict(sorted(Counter(r.label for r in self.records).items())),
        }


def ingest(
    items: Iterable[RawItem], classes: list[str], min_size_px: tuple[int, int], out_dir: Path, *,
    label_problem: Callable[[str, list[str]], str | None] | None = None, folder: Callable[[str], str] | None = None
) -> IngestResult:
    """Decode, check and store every item under `out_dir/images/`; the first copy of identical pixels wins.

    A task whose annotation is not one class name says why an item's label cannot be used (`label_problem`,
    else: not one of `classes`) and under which folder of `images/` its files land (`folder`, else: the
    class's)."""
    label_problem = label_problem or _label_problem
    folder = folder or (lambda label: label)
    result = IngestResult()
    by_sha: dict[str, Record] = {}
    for item in items:
        image = decoded(item.read)
        if isinstance(image, str):
            reason: str | None = image
        else:
            reason = label_problem(item.label, classes) or size_problem(image.width, image.height, min_size_px)
        if reason is not None:
            result.quarantined.append(Quarantined(item.origin, item.source, reason))
            continue
        if image.sha256 in by_sha:
            first = by_sha[image.sha256]
            if first.label == item.label:
                result.duplicates_skipped += 1
            else:
                result.quarantined.append(Quarantined(item.origin, item.source, f"same pixels as {first.origin}, "
                                                      f"which is labelled '{first.label}' not '{item.label}'"))
            continue
        relative = f"images/{folder(item.label)}/{image.sha256[:16]}.png"
        (out_dir / relative).parent.mkdir(parents=True, exist_ok=True)
        (out_dir / relative).write_bytes(image.png)
        record = Record(relative, item.label, item.source, item.origin, item.group or item.origin, image.sha256,
                        image.width, image.height, image.mode, **asdict(item.provenance))
        by_sha[image.sha256] = record
        result.records.append(record)
    return result


def decoded(read: Callable[[], Image.Image]) -> CanonicalImage | str:
    """The image in canonical form, or why it cannot be used (the quarantine reason)."""
    try:
        return canonicalize(read())
    except ImageTooLarge as exc:
        return f"too large: {exc} (data.quality.max_image_pixels)"
    except RefusedFile as exc:
        return str(exc)
    except UnreadableImage as exc:
        return f"unreadable image ({exc})"


def _label_problem(label: str, classes: list[str]) -> str | None:
    if label in classes:
        return None
    if not label:
        return "no label (for video frames: no span of the manifest covers this time)"
    close = difflib.get_close_matches(label, classes, n=1, cutoff=0.6)
    return f"unknown label '{label}'" + (f"; did you mean '{close[0]}'?" if close else f"; classes are {classes}")


def size_problem(width: int, height: int, min_size_px: tuple[int, int]) -> str | None:
    if width < min_size_px[0] or height < min_size_px[1]:
        return f"image is {width}x{height}, smaller than min_size_px {min_size_px[0]}x{min_size_px[1]}"
    return None


def write_tables(out: Path, ctx: StageContext, skipped: list[Skipped], records: list[Record],
                 quarantined: list[Quarantined]) -> None:
    """What every task's ingest writes beside the images: the files sources skipped, the manifest and the
    quarantined images, each with its reason."""
    write_csv(out / ctx.inside("skipped"), [asdict(s) for s in skipped], ("origin", "source", "reason"))
    write_csv(out / ctx.inside("manifest"), [asdict(r) for r in records], MANIFEST_FIELDS)
    write_csv(out / ctx.inside("quarantine"), [asdict(q) for q in quarantined], ("origin", "source", "reason"))


def main(ctx: StageContext) -> None:
    sources: list[Source] = ctx.spec("data.sources")
    classes: list[str] = ctx.spec("classes")
    flow_px: float = ctx.spec("data.cleaning.static_frame_flow_px")
    stats = SourceStats()
    limits = PixelLimits(max_pixels=ctx.spec("data.quality.max_image_pixels"))
    with atomic_directory(ctx.output("images")) as out:
        try:
            items = (item for source in sources
                     for item in iter_source(source, ctx.root, flow_px, stats, classes, limits))
            with Progress("ingest", None, unit="image") as shown:
                result = ingest(shown.iterate(items), classes, tuple(ctx.spec("data.quality.min_size_px")), out)
        except UnsupportedSource as exc:
            raise StageFailure(str(exc)) from None
        result.static_frames_dropped = stats.static_frames_dropped
        result.files_skipped = len(stats.skipped)
        write_tables(out, ctx, stats.skipped, result.records, result.quarantined)
    summary = result.summary()
    write_json(ctx.output("summary"), summary)
    print(f"ingest: {summary['images']} images, {summary['quarantined']} quarantined "
          f"(see {ctx.output('quarantine')}), {summary['files_skipped']} files skipped "
          f"(see {ctx.output('skipped')})")


if __name__ == "__main__":
    from core.contracts.classification.ingest import CONTRACT

    run_stage(CONTRACT, main)
