"""Make great-expectations' Data Docs render offline, as GX users know them (styled, icons, tables, charts).

GX's page templates load bootstrap, font-awesome, jquery, bootstrap-table, vega and the GX logo from four
CDNs and an S3 bucket, with no setting to change that. This post-processing step copies the vendored files
(`core.webassets`, the same versions GX names) into `static/vendor/` of the site and points each page at
them by relative path, so the folder still works when moved. It fails, naming file and address, if a page
would still fetch anything from another machine: a GX upgrade that adds a CDN must not go unnoticed.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from core.webassets import stand_in
from core.webassets.offline import REMOTE, file_fetches, local_target, relative_link

VENDOR_FOLDER = "static/vendor"
GX_ASSETS_HOST = "https://great-expectations-web-assets.s3.us-east-2.amazonaws.com/"
GX_IMAGES = {"logo-long.png": "static/images/logo-long.png",
             # No dark logo ships with GX; the light one stands in for the dark theme's navbar background.
             "full_logo_dark.png": "static/images/logo-long.png"}
"""GX's logos on S3 -> the copies GX itself writes into every site's `static/images/`."""

# SRI and CORS attributes on a file:// script make Chromium refuse it (a file page has an opaque origin).
# Their guarantee is kept another way: the vendored bytes are checked against GX's own sha384 in the tests.
_INTEGRITY = re.compile(r'\s+(?:integrity|crossorigin)="[^"]*"')
_TAG_WITH_LOCAL_SOURCE = re.compile(r'<(?:script|link)\b[^>]*(?:src|href)="(?!\w+:|//)[^"]*"[^>]*>')


class OfflineDocsError(RuntimeError):
    """A Data Docs page would fetch something no vendored file stands in for."""


def make_offline(site: Path) -> list[str]:
    """Rewrite every page and stylesheet of the Data Docs `site` to use local assets; returns the packages
    copied. Deterministic: the same site gives the same bytes."""
    copied: set[str] = set()
    for path in _pages(site):
        if path.relative_to(site).as_posix().startswith(VENDOR_FOLDER):
            continue
        text = original = path.read_text(encoding="utf-8")
        for fetch in file_fetches(path):
            if REMOTE.match(fetch.url):
                if (local := _local_copy(site, fetch.url, copied)) is not None:
                    text = text.replace(fetch.url, relative_link(local, path))
            elif (moved := _misplaced_static(site, path, fetch.url)) is not None:
                text = text.replace(f'"{fetch.url}"', f'"{relative_link(moved, path)}"')
        text = _TAG_WITH_LOCAL_SOURCE.sub(lambda m: _INTEGRITY.sub("", m.group()), text)
        if text != original:
            path.write_text(text, encoding="utf-8")
    if problems := offline_problems(site):  # what no stand-in replaced is still there: read back, not assumed
        raise OfflineDocsError("Data Docs would load these from the internet (no vendored file stands in) or from "
                               "missing files:\n  " + "\n  ".join(problems) + "\nvendor them in "
                               "core/webassets/manifest.json (python -m core.webassets.refresh)")
    return sorted(copied)


def _pages(site: Path) -> list[Path]:
    return sorted([*site.rglob("*.html"), *site.rglob("*.css")])


def _local_copy(site: Path, url: str, copied: set[str]) -> Path | None:
    """The local file that replaces `url` inside `site`, copying its vendored package there once."""
    if url.startswith(GX_ASSETS_HOST):
        image = GX_IMAGES.get(url.removeprefix(GX_ASSETS_HOST).split("?", 1)[0])
        return site / image if image and (site / image).is_file() else None
    found = stand_in(url)
    if found is None:
        return None
    package, file = found
    target = site / VENDOR_FOLDER / package.folder_name
    if package.folder_name not in copied:
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(package.folder, target)  # the vendored folder holds exactly the package's members
        copied.add(package.folder_name)
    return target / file


def _misplaced_static(site: Path, page: Path, url: str) -> Path | None:
    """GX counts one `../` too few for the favicon of validation pages; a link into the site's own `static/`
    that misses is pointed at the file it meant."""
    target = local_target(page, url)
    if target is None or target.is_file() or "static/" not in url:
        return None
    meant = site / "static" / url.split("static/", 1)[1]
    return meant if meant.is_file() else None


def offline_problems(site: Path) -> list[str]:
    """Every address in the site's pages and stylesheets that would leave the machine or names no file (empty
    when the site renders offline)."""
    problems = []
    for path in _pages(site):
        for fetch in file_fetches(path):
            if REMOTE.match(fetch.url):
                problems.append(f"{path.relative_to(site)}: {fetch.where} {fetch.url}")
            elif (target := local_target(path, fetch.url)) is not None and not target.is_file():
                problems.append(f"{path.relative_to(site)}: {fetch.where} {fetch.url} (no such file)")
    return problems
