"""ingest on tiny hand-made folders: good images land, bad ones are quarantined with a reason."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.spec.data import ImageFolderSource, ManifestSource, SklearnDigitsSource
from stages.ingest import ingest
from vision.data.sources import UnsupportedSource, iter_source

CLASSES = ["cat", "dog"]


def _image(seed: int, size: int = 16, mode: str = "RGB") -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    return Image.fromarray(pixels).convert(mode)


def _jpeg_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "raw"
    for name in ("cat", "dog", "dgo"):
        (root / name).mkdir(parents=True)
    _image(1).save(root / "cat" / "a.png")
    _image(1).save(root / "cat" / "z-copy.png")  # same pixels, same label: an exact duplicate
    _image(2, mode="L").save(root / "cat" / "grey.png")
    (root / "dog" / "b.jpg").write_bytes(_jpeg_bytes(_image(3)))
    _image(1).save(root / "dog" / "conflict.png")  # same pixels as cat/a.png, other label
    (root / "dog" / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\nthis is not a png")
    (root / "dog" / "truncated.jpg").write_bytes(_jpeg_bytes(_image(4, size=64))[:600])
    _image(5, size=4).save(root / "dog" / "tiny.png")
    _image(6).save(root / "dgo" / "typo.png")
    (root / "dog" / "notes.txt").write_text("not an image")
    return root


def _run(folder: Path, out: Path):
    items = iter_source(ImageFolderSource(kind="image_folder", path=folder.name), folder.parent)
    return ingest(items, CLASSES, (8, 8), out)


def test_good_images_are_stored_canonically(folder: Path, tmp_path: Path) -> None:
    result = _run(folder, tmp_path / "out")
    assert sorted(Path(r.origin).name for r in result.records) == ["a.png", "b.jpg", "grey.png"]
    for record in result.records:
        stored = tmp_path / "out" / record.path
        assert stored.suffix == ".png"
        assert record.path.startswith(f"images/{record.label}/")
        with Image.open(stored) as image:
            assert image.size == (record.width, record.height)
            assert image.mode == record.mode
    assert {r.mode for r in result.records} == {"RGB", "L"}


def test_bad_files_are_quarantined_with_reasons(folder: Path, tmp_path: Path) -> None:
    result = _run(folder, tmp_path / "out")
    reasons = {Path(q.origin).name: q.reason for q in result.quarantined}
    assert set(reasons) == {"corrupt.png", "truncated.jpg", "tiny.png", "typo.png", "conflict.png"}
    assert reasons["corrupt.png"].startswith("unreadable image")
    assert reasons["truncated.jpg"].startswith("unreadable image")
    assert "truncated" in reasons["truncated.jpg"].lower()
    assert reasons["tiny.png"] == "image is 4x4, smaller than min_size_px 8x8"
    assert reasons["typo.png"] == "unknown label 'dgo'; did you mean 'dog'?"
    assert {r.group for r in result.records} == {r.origin for r in result.records}  # single images: own group
    assert "labelled 'cat' not 'dog'" in reasons["conflict.png"]


def test_exact_duplicates_are_kept_once(folder: Path, tmp_path: Path) -> None:
    result = _run(folder, tmp_path / "out")
    assert result.duplicates_skipped == 1
    assert len({r.sha256 for r in result.records}) == len(result.records)
    summary = result.summary()
    assert summary["images"] == 3
    assert summary["quarantined"] == 5
    assert summary["corrupt_fraction"] == round(5 / 9, 6)
    assert summary["per_class"] == {"cat": 2, "dog": 1}


def test_same_input_gives_same_bytes(folder: Path, tmp_path: Path) -> None:
    first, second = _run(folder, tmp_path / "one"), _run(folder, tmp_path / "two")
    assert first.records == second.records
    for record in first.records:
        assert (tmp_path / "one" / record.path).read_bytes() == (tmp_path / "two" / record.path).read_bytes()


def test_manifest_source_reports_missing_files(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    raw.mkdir()
    _image(7).save(raw / "x.png")
    with (raw / "labels.csv").open("w", newline="") as handle:
        csv.writer(handle).writerows([("path", "label"), ("x.png", "cat"), ("gone.png", "dog")])
    items = iter_source(ManifestSource(kind="manifest", path="raw/labels.csv"), tmp_path)
    result = ingest(items, CLASSES, (8, 8), tmp_path / "out")
    assert [r.label for r in result.records] == ["cat"]
    assert [q.reason for q in result.quarantined] == ["unreadable image (file listed in the manifest does not exist)"]


def test_manifest_without_header_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "labels.csv").write_text("x.png,cat\n")
    with pytest.raises(UnsupportedSource, match="needs a header with columns path,label"):
        list(iter_source(ManifestSource(kind="manifest", path="labels.csv"), tmp_path))


def test_sklearn_digits_gives_the_real_1797_images(tmp_path: Path) -> None:
    items = list(iter_source(SklearnDigitsSource(kind="sklearn_digits"), tmp_path))
    assert len(items) == 1797
    assert {item.label for item in items} == {str(d) for d in range(10)}
    pixels = np.stack([np.asarray(item.read()) for item in items[:100]])
    assert pixels.shape == (100, 8, 8)
    assert pixels.max() == 255  # 17 ink levels (0..16) scaled to the full 8-bit range
    assert set(np.unique(pixels)) <= {round(level * 255 / 16) for level in range(17)}


def test_sklearn_digits_can_be_capped_per_class(tmp_path: Path) -> None:
    source = SklearnDigitsSource(kind="sklearn_digits", max_images_per_class=5)
    items = list(iter_source(source, tmp_path))
    assert len(items) == 50


def test_sklearn_digits_yields_only_the_projects_classes(tmp_path: Path) -> None:
    items = list(iter_source(SklearnDigitsSource(kind="sklearn_digits"), tmp_path, classes=["3", "8"]))
    assert {item.label for item in items} == {"3", "8"}
    assert len(items) == 183 + 174
