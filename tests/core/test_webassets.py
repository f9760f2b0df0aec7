"""The vendored web assets: intact, licensed, byte-identical to what the CDNs serve, and covering every
address great-expectations' page templates name."""

from __future__ import annotations

import base64
import hashlib
import re
import shutil
from pathlib import Path

import pytest

from core.webassets import VENDOR_DIR, checksum_problems, package, packages, stand_in
from core.webassets.offline import html_fetches, local_target, remote_fetches


def test_every_vendored_file_matches_its_recorded_hash() -> None:
    assert checksum_problems() == []


def test_a_changed_vendored_file_is_reported(tmp_path: Path) -> None:
    copy = tmp_path / "vendor"
    shutil.copytree(VENDOR_DIR, copy)
    target = copy / package("vega").folder_name / "build" / "vega.min.js"
    target.write_bytes(target.read_bytes() + b"\n// edited")
    (copy / package("jquery").folder_name / "dist" / "jquery.min.js").unlink()
    problems = checksum_problems(copy)
    assert any("vega.min.js: changed" in p for p in problems)
    assert any("jquery.min.js: missing" in p for p in problems)


def test_every_package_names_its_version_and_carries_a_licence() -> None:
    for pkg in packages():
        assert re.fullmatch(r"\d+\.\d+\.\d+", pkg.version), pkg
        assert pkg.folder.name.endswith(f"@{pkg.version}")
        assert len(pkg.licence.read_text(encoding="utf-8")) > 300, pkg.name
        assert {file for _, file in pkg.urls} <= set(pkg.files)


def _gx_templates() -> Path:
    import great_expectations

    return Path(great_expectations.__file__).parent / "render" / "view" / "templates"


def test_gx_integrity_hashes_match_the_vendored_bytes() -> None:
    """GX pins two scripts by SRI hash: the vendored files must be exactly the bytes its CDNs serve."""
    text = (_gx_templates() / "js_script_imports.j2").read_text(encoding="utf-8")
    pinned = re.findall(r'src="([^"]+)"\s+integrity="sha384-([^"]+)"', text)
    assert len(pinned) >= 2
    for url, digest in pinned:
        found = stand_in(url)
        assert found is not None, url
        pkg, file = found
        assert base64.b64encode(hashlib.sha384((pkg.folder / file).read_bytes()).digest()).decode() == digest, url


def test_every_cdn_address_in_gx_page_templates_has_a_stand_in() -> None:
    """A GX upgrade that names a new CDN file fails here, before any pipeline run."""
    missing = set()
    for template in sorted(_gx_templates().glob("*.j2")):
        for url in re.findall(r'(?:src|href)="(https?://[^"{}]+)"', template.read_text(encoding="utf-8")):
            if re.search(r"\.(js|css)$", url) or "npm/" in url:
                missing |= {url} if stand_in(url) is None else set()
    assert missing == set()


def test_fetch_scanner_finds_loaded_resources_and_ignores_links() -> None:
    page = """<html><head>
      <link rel="stylesheet" href="https://cdn.example/a.css"><link rel="canonical" href="https://example.org/">
      <script src="//cdn.example/b.js"></script><meta http-equiv="refresh" content="5; url=https://x.example/">
      <style>@import "https://fonts.example/f.css"; body { background: url('https://img.example/bg.png') }</style>
      </head><body><a href="https://docs.example/">docs</a>
      <img src="local.png" srcset="https://img.example/1x.png 1x, two.png 2x">
      <div style="background-image: url(data:image/png;base64,AAAA)"></div>
      <svg><image href="https://img.example/svg.png"/></svg><iframe src="file:///etc/passwd"></iframe>
      </body></html>"""
    urls = [fetch.url for fetch in html_fetches(page)]
    assert "https://docs.example/" not in urls
    assert "https://example.org/" not in urls
    remote = {u for u in urls if not u.startswith(("local", "two", "data:"))}
    assert remote == {"https://cdn.example/a.css", "//cdn.example/b.js", "https://x.example/",
                      "https://fonts.example/f.css", "https://img.example/bg.png", "https://img.example/1x.png",
                      "https://img.example/svg.png", "file:///etc/passwd"}


def test_remote_fetches_of_a_stylesheet(tmp_path: Path) -> None:
    css = tmp_path / "a.css"
    css.write_text("@font-face{src:url(../webfonts/x.woff2) format('woff2'),url(https://f.example/x.ttf)}")
    assert [f.url for f in remote_fetches(css)] == ["https://f.example/x.ttf"]
    assert local_target(css, "../webfonts/x.woff2?v=1#a") == tmp_path / ".." / "webfonts" / "x.woff2"
    assert local_target(css, "data:font/woff2;base64,AA") is None


@pytest.mark.parametrize("name", ["vega", "vega-lite", "vega-embed"])
def test_vega_bundles_are_safe_to_inline(name: str) -> None:
    """An inline <script> ends at the first `</script`; the template inlines these files as they are."""
    pkg = package(name)
    text = (pkg.folder / pkg.files[0]).read_text(encoding="utf-8").lower()
    assert "</script" not in text
    assert "<!--" not in text
