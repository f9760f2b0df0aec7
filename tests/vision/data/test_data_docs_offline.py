"""Data Docs written by a real great-expectations checkpoint load nothing from the internet, keep working
when their folder moves, and stay byte-reproducible."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pandas as pd
import pytest

from vision.data.data_docs import OfflineDocsError, make_offline, offline_problems
from vision.data.quality import run_checkpoint


def _docs(folder: Path) -> Path:
    import great_expectations as gx

    table = pd.DataFrame({"width": [8, 9, 10, 12], "label": ["a", "b", "a", "c"]})
    run_checkpoint(table, [gx.expectations.ExpectColumnValuesToBeBetween(column="width", min_value=8, max_value=11),
                           gx.expectations.ExpectColumnValuesToBeInSet(column="label", value_set=["a", "b"])],
                   folder, "offline")
    return folder


def _digests(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_data_docs_name_no_remote_address_and_no_missing_file(tmp_path: Path) -> None:
    site = _docs(tmp_path / "docs")
    assert offline_problems(site) == []  # nothing remote, no missing file
    pages = sorted(site.rglob("*.html"))
    assert len(pages) == 3
    for page in pages:
        text = page.read_text(encoding="utf-8")
        assert "static/vendor/bootstrap@4.3.1/dist/css/bootstrap.min.css" in text
        assert "integrity=" not in text
        assert "crossorigin=" not in text
    vendored = site / "static" / "vendor"
    assert (vendored / "fortawesome-fontawesome-free@6.6.0" / "webfonts" / "fa-solid-900.woff2").is_file()
    assert all(any(p.name.startswith("LICENSE") for p in folder.iterdir()) for folder in vendored.iterdir())


def test_data_docs_are_byte_reproducible_and_movable(tmp_path: Path) -> None:
    first, second = _docs(tmp_path / "one"), _docs(tmp_path / "two")
    assert _digests(first) == _digests(second)
    moved = tmp_path / "elsewhere" / "docs"
    shutil.move(first, moved)
    assert offline_problems(moved) == []


def test_an_unknown_cdn_fails_naming_file_and_address(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text('<link rel="stylesheet" href="https://cdn.example/new-lib@2/x.css">'
                                     '<script src="https://cdn.jsdelivr.net/npm/vega@5"></script>')
    with pytest.raises(OfflineDocsError, match=r"index.html: <link rel='stylesheet'> https://cdn.example/new-lib@2"):
        make_offline(site)


def test_a_missing_local_file_fails(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text('<img src="static/images/gone.png">')
    with pytest.raises(OfflineDocsError, match=r"gone\.png \(no such file"):
        make_offline(site)


def test_hostile_values_stay_text_in_the_data_docs_and_raw_in_the_results(tmp_path: Path) -> None:
    """GX writes values into its pages as raw HTML; a label or file name must not become markup there."""
    import great_expectations as gx

    hostile = ["<img src='https://evil.example/x.png'>", "<script>alert(1)</script>", "a&amp;b"]
    table = pd.DataFrame({"label": ["a", *hostile], "path": ["x.png", *(f"{h}.png" for h in hostile)]})
    checks, raw = run_checkpoint(
        table, [gx.expectations.ExpectColumnValuesToBeInSet(column="label", value_set=["a", "a&amp;b"]),
                gx.expectations.ExpectColumnValuesToBeUnique(column="path")], tmp_path / "docs", "hostile")
    in_set, unique = checks
    assert not in_set.success
    assert sorted(in_set.unexpected_examples) == sorted(hostile[:2])  # the raw values, not their escaped form
    assert in_set.kwargs["value_set"] == ["a", "a&amp;b"]
    assert unique.success
    site = tmp_path / "docs"
    assert offline_problems(site) == []
    pages = "".join(p.read_text(encoding="utf-8") for p in site.rglob("*.html") if "static" not in p.parts)
    assert "<script>alert(1)" not in pages
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in pages
    assert "<script>alert(1)</script>" in str(raw)
