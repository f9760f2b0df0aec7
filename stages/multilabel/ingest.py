"""ingest (multi-label): every source -> one canonical image set, an image manifest and a tag table.

An image's tags arrive as one field (a manifest's `tags` column, separated by `|`; a Label Studio multiple-choice
annotation; the embedded photo mosaics, vision.data.tag_sources); every tag must be one of the
spec's classes, or the image is quarantined with the reason (and the closest class name when there is one).
Images land in `images/tagged/<sha256[:16]>.png`; `tags.csv` holds one row per (image, tag), and an image
without tags is a negative. The manifest's `label` is the image's stratum for the split (its rarest tag,
vision.data.strata), so split, prune and clean spread every tag over the splits as they do classes. The same
pixels under two different tag sets are quarantined as for classification.
"""

from __future__ import annotations

import difflib
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from core.fsutil import atomic_directory, write_csv, write_json
from core.progress import Progress
from core.spec.data import Source
from stages.ingest import IngestResult, ingest, write_tables
from stages.runtime import StageContext, StageFailure, run_stage
from vision.data.imageio import PixelLimits
from vision.data.sources import RawItem, SourceStats, UnsupportedSource
from vision.data.strata import NEGATIVE, rarest_label_strata
from vision.data.tag_sources import iter_tagged_source
from vision.data.tags import TAG_FIELDS, parse_tags, tag_rows

FOLDER = "tagged"


def tag_problem(field: str, classes: list[str]) -> str | None:
    """Why an image's tags cannot be used: a tag that is not a class (with the closest class, if any)."""
    for tag in parse_tags(field):
        if tag not in classes:
            close = difflib.get_close_matches(tag, classes, n=1, cutoff=0.6)
            return f"unknown tag '{tag}'" + (f"; did you mean '{close[0]}'?" if close else f"; tags are {classes}")
    return None


@dataclass
class TaggedIngest:
    """The ingest with each image's tags; its records' labels are their strata."""

    result: IngestResult
    tags: dict[str, list[str]]
    """Canonical image path -> its tags."""

    def summary(self) -> dict[str, object]:
        per_tag = Counter(tag for tags in self.tags.values() for tag in tags)
        return {**{k: v for k, v in self.result.summary().items() if k != "per_class"},
                "negative_images": sum(not tags for tags in self.tags.values()),
                "per_tag": dict(sorted(per_tag.items())),
                "per_stratum": dict(sorted(Counter(r.label for r in self.result.records).items()))}


def ingest_tagged(items: Iterable[RawItem], classes: list[str], min_size_px: tuple[int, int], out_dir: Path
                  ) -> TaggedIngest:
    """Decode, check and store every tagged item (stages.ingest.ingest with the tags' own check)."""
    result = ingest(items, classes, min_size_px, out_dir, label_problem=tag_problem, folder=lambda _: FOLDER)
    tags = {r.path: parse_tags(r.label) for r in result.records}
    strata = rarest_label_strata(tags, Counter(tag for found in tags.values() for tag in found))
    result.records = [replace(r, label=strata[r.path]) for r in result.records]
    return TaggedIngest(result, tags)


def main(ctx: StageContext) -> None:
    sources: list[Source] = ctx.spec("data.sources")
    classes: list[str] = ctx.spec("classes")
    stats = SourceStats()
    limits = PixelLimits(max_pixels=ctx.spec("data.quality.max_image_pixels"))
    with atomic_directory(ctx.output("images")) as out:
        try:
            items = (item for source in sources
                     for item in iter_tagged_source(source, ctx.root, stats, limits, classes))
            with Progress("ingest", None, unit="image") as shown:
                found = ingest_tagged(shown.iterate(items), classes, tuple(ctx.spec("data.quality.min_size_px")), out)
        except UnsupportedSource as exc:
            raise StageFailure(str(exc)) from None
        found.result.files_skipped = len(stats.skipped)
        write_tables(out, ctx, stats.skipped, found.result.records, found.result.quarantined)
        write_csv(out / ctx.inside("tags"), tag_rows(found.tags), TAG_FIELDS)
    summary = found.summary()
    write_json(ctx.output("summary"), summary)
    print(f"ingest: {summary['images']} images ({summary['negative_images']} without tags; per tag "
          f"{summary['per_tag']}), {summary['quarantined']} quarantined (see {ctx.output('quarantine')}), "
          f"{summary['files_skipped']} files skipped (see {ctx.output('skipped')}); strata for the split: "
          f"{', '.join(sorted(set(summary['per_stratum']) - {NEGATIVE})) or 'none'}")


if __name__ == "__main__":
    from core.contracts.multilabel.ingest import CONTRACT

    run_stage(CONTRACT, main)
