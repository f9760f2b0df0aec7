"""ingest on a folder a careless or hostile user filled: bombs, links out of the repository, dangling links,
linked folders, other files, 16- and 32-bit images. Nothing crashes, nothing outside the repository is
read, and every file not ingested is listed with its reason."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.spec.data import ImageFolderSource, ManifestSource
from runtime.images import PixelLimits
from stages.ingest import ingest
from tests.hostile import bomb_png, float_tiff, gradient16_png
from vision.data.sources import SourceStats, iter_source

pytestmark = pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symbolic links")
CLASSES = ["cat", "dog"]


def _png(path: Path, seed: int) -> None:
    pixels = np.random.default_rng(seed).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)


@pytest.fixture
def hostile(tmp_path: Path) -> tuple[Path, Path]:
    """(repository root, outside folder)."""
    repo, outside = tmp_path / "repo", tmp_path / "outside"
    raw = repo / "raw"
    for name in ("cat", "dog"):
        (raw / name).mkdir(parents=True)
    outside.mkdir()
    _png(raw / "cat" / "good.png", 1)
    (raw / "cat" / "bomb.png").write_bytes(bomb_png(30_000, 30_000))
    _png(outside / "secret.png", 2)
    (raw / "cat" / "outside.png").symlink_to(outside / "secret.png")
    (raw / "dog" / "passwd.png").symlink_to("/etc/passwd")
    (raw / "dog" / "gone.png").symlink_to(raw / "dog" / "deleted.png")
    (raw / "dog" / "linked-folder").symlink_to(outside, target_is_directory=True)
    (raw / "mouse").symlink_to(outside, target_is_directory=True)
    (raw / "dog" / "notes.txt").write_text("not an image")
    (raw / "stray.png").write_bytes(b"outside any class folder")
    (raw / "dog" / "deep16.png").write_bytes(gradient16_png()[0])
    (raw / "dog" / "float32.tif").write_bytes(float_tiff()[0])
    _png(raw / "dog" / "inside-link-target.png", 3)
    (raw / "cat" / "inside-link.png").symlink_to(raw / "dog" / "inside-link-target.png")
    return repo, outside


def _ingest(repo: Path, tmp_path: Path, max_pixels: int = 100_000_000):
    stats = SourceStats()
    items = iter_source(ImageFolderSource(kind="image_folder", path="raw"), repo, stats=stats,
                        limits=PixelLimits(max_pixels=max_pixels))
    return ingest(items, CLASSES, (8, 8), tmp_path / "out"), stats


def _reasons(result) -> dict[str, str]:
    return {Path(q.origin).name: q.reason for q in result.quarantined}


def test_a_decompression_bomb_is_quarantined_with_its_size(hostile, tmp_path: Path) -> None:
    result, _ = _ingest(hostile[0], tmp_path)
    assert _reasons(result)["bomb.png"].startswith("too large: image is 30000x30000 (900.0 megapixels); the "
                                                   "limit is 100 megapixels")
    assert "data.quality.max_image_pixels" in _reasons(result)["bomb.png"]


def test_links_out_of_the_repository_are_quarantined_and_never_read(hostile, tmp_path: Path) -> None:
    result, _ = _ingest(hostile[0], tmp_path)
    reasons = _reasons(result)
    assert reasons["outside.png"].startswith("symbolic link leaves the repository")
    assert reasons["passwd.png"].startswith("symbolic link leaves the repository (-> /etc/passwd)")
    assert reasons["gone.png"].startswith("dangling symbolic link")
    assert "secret.png" not in {Path(r.origin).name for r in result.records}
    stored = {r.sha256 for r in result.records}
    assert len(stored) == len(result.records)
    assert {Path(r.origin).name for r in result.records} == {"good.png", "deep16.png", "float32.tif",
                                                              "inside-link.png"}


def test_a_link_inside_the_repository_is_followed(hostile, tmp_path: Path) -> None:
    result, _ = _ingest(hostile[0], tmp_path)
    # The link's target is the same image under another class: the conflict is reported, not hidden.
    assert "labelled 'cat' not 'dog'" in _reasons(result)["inside-link-target.png"]


def test_files_not_read_are_listed_with_the_reason(hostile, tmp_path: Path) -> None:
    _result, stats = _ingest(hostile[0], tmp_path)
    skipped = {Path(s.origin).name: s.reason for s in stats.skipped}
    assert skipped["notes.txt"].startswith("not an image file name (suffix '.txt'")
    assert skipped["linked-folder"].startswith("symbolic link to a folder: not followed")
    assert skipped["mouse"].startswith("symbolic link to a folder: not followed")
    assert skipped["stray.png"] == "not inside a class folder"


def test_deep_images_are_rescaled_not_clipped(hostile, tmp_path: Path) -> None:
    result, _ = _ingest(hostile[0], tmp_path)
    by_name = {Path(r.origin).name: r for r in result.records}
    deep = np.asarray(Image.open(tmp_path / "out" / by_name["deep16.png"].path))
    expected = np.rint(gradient16_png()[1] / 257.0)
    assert np.abs(deep.astype(int) - expected).max() == 0
    assert len(np.unique(deep)) > 200  # a gradient, not black and white
    floats = np.asarray(Image.open(tmp_path / "out" / by_name["float32.tif"].path))
    np.testing.assert_array_equal(floats, np.rint(float_tiff()[1] * 255).astype(np.uint8))


def test_a_manifest_cannot_point_outside_the_repository(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / "raw").mkdir(parents=True)
    _png(tmp_path / "secret.png", 4)
    _png(repo / "raw" / "ok.png", 5)
    with (repo / "raw" / "labels.csv").open("w", newline="") as handle:
        csv.writer(handle).writerows([["path", "label"], ["ok.png", "cat"], ["../../secret.png", "cat"],
                                      ["/etc/passwd", "dog"]])
    items = iter_source(ManifestSource(kind="manifest", path="raw/labels.csv"), repo)
    result = ingest(items, CLASSES, (8, 8), tmp_path / "out")
    assert [Path(r.origin).name for r in result.records] == ["ok.png"]
    reasons = sorted(q.reason for q in result.quarantined)
    assert all("leaves the repository" in r for r in reasons), reasons
    assert len(reasons) == 2
