"""The multi-label data path: the embedded photo mosaics, a `manifest` source with a tags column, and ingest's
tags, strata and quarantine."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

from core.fsutil import read_csv
from core.spec.data import ManifestSource
from stages.multilabel.ingest import FOLDER, ingest_tagged
from vision.data.photo_tags import PHOTO_TAGS, TAGS, generate, write_dataset
from vision.data.sources import iter_source
from vision.data.strata import NEGATIVE


def _digest(folder: Path) -> str:
    return hashlib.sha256(b"".join(p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file())).hexdigest()


def test_mosaics_are_repeatable_and_their_tags_are_what_their_photographs_show(tmp_path: Path) -> None:
    counts = write_dataset(24, 64, 2, 7, tmp_path / "a")
    write_dataset(24, 64, 2, 7, tmp_path / "b")
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    rows = read_csv(tmp_path / "a" / "manifest.csv")
    assert len(rows) == 24
    assert sum(counts.values()) == sum(len(r["tags"].split("|")) for r in rows if r["tags"])
    assert set(TAGS) == {tag for tags in PHOTO_TAGS.values() for tag in tags}
    some = [tags for _, tags in generate(40, 64, 2, 0, ["person", "animal"])]
    assert all(set(tags) <= {"person", "animal"} for tags in some)  # a project may learn some of the tags
    assert any(len(tags) == 2 for tags in some)  # several tags on one image


def test_ingest_keeps_tags_quarantines_unknown_and_conflicting_ones(tmp_path: Path) -> None:
    data = tmp_path / "data"
    write_dataset(30, 64, 2, 3, data)
    rows = read_csv(data / "manifest.csv")
    shutil.copyfile(data / rows[0]["path"], data / "copy.png")
    shutil.copyfile(data / rows[1]["path"], data / "same.png")
    shutil.copyfile(data / rows[2]["path"], data / "typo.png")
    with (data / "manifest.csv").open("a") as handle:
        handle.write(f"copy.png,{'|'.join(reversed(rows[0]['tags'].split('|')))}\n")  # same pixels, same tags
        handle.write(f"same.png,{'plant' if rows[1]['tags'] != 'plant' else 'food'}\n")  # same pixels, other tags
        handle.write("typo.png,persn|plant\n")
        handle.write("missing.png,plant\n")
    items = iter_source(ManifestSource(kind="manifest", path="data/manifest.csv"), tmp_path)
    found = ingest_tagged(items, TAGS, (8, 8), tmp_path / "ingest")
    reasons = {q.origin.rsplit("/", 1)[-1]: q.reason for q in found.result.quarantined}
    assert reasons["typo.png"] == "unknown tag 'persn'; did you mean 'person'?"
    assert "same pixels as" in reasons["same.png"]
    assert "missing.png" in reasons
    assert found.result.duplicates_skipped == 1
    assert len(found.result.records) == 30
    assert all(r.path.startswith(f"images/{FOLDER}/") for r in found.result.records)
    by_origin = {r.origin.rsplit("/", 1)[-1]: r for r in found.result.records}
    first = by_origin[Path(rows[0]["path"]).name]
    assert found.tags[first.path] == (sorted(rows[0]["tags"].split("|")) if rows[0]["tags"] else [])
    strata = {r.label for r in found.result.records}
    assert strata <= set(TAGS) | {NEGATIVE, "_mixed"}
    summary = found.summary()
    assert summary["per_tag"] == {tag: sum(tag in tags for tags in found.tags.values())
                                  for tag in sorted({t for tags in found.tags.values() for t in tags})}
