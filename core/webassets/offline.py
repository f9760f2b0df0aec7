"""Find every address an HTML or CSS file would make a browser fetch, and point them at local copies.

A report is offline only if nothing in it loads from another machine. Links a reader may click (`<a href>`)
are fine; scripts, stylesheets, images, frames, fonts and CSS imports are not. `html.parser` (stdlib) walks
the tags: no library offers "resources a page loads" as a function, and a regex over tags would miss
attributes in other orders.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

REMOTE = re.compile(r"^\s*(?:[a-z][a-z0-9+.-]*:)?//", re.IGNORECASE)
"""http://, https://, ws://, ftp:// ... and protocol-relative //host: anything not on this machine.
file:// is local but names a path on the machine that wrote the page, so it counts as remote too."""

_CSS_URL = re.compile(r"""url\(\s*(['"]?)([^'")\s]+)\1\s*\)|@import\s+(['"])([^'"]+)\3""", re.IGNORECASE)

# (tag, attribute) pairs whose value the browser fetches when the page loads.
_FETCHED = {("script", "src"), ("img", "src"), ("img", "srcset"), ("source", "src"), ("source", "srcset"),
            ("iframe", "src"), ("frame", "src"), ("embed", "src"), ("object", "data"), ("video", "src"),
            ("video", "poster"), ("audio", "src"), ("track", "src"), ("input", "src"), ("image", "href"),
            ("image", "xlink:href"), ("use", "href"), ("use", "xlink:href"), ("feimage", "href")}
_NAVIGATION_RELS = {"canonical", "alternate", "author", "help", "license", "next", "prev", "search", "bookmark"}


@dataclass(frozen=True)
class Fetch:
    url: str
    where: str
    """`<script src>`, `<style>`, `style=` ...: where the address was found, for the error message."""


def css_urls(css: str, where: str = "css") -> list[Fetch]:
    return [Fetch(m.group(2) or m.group(4), where) for m in _CSS_URL.finditer(css)]


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[Fetch] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        for name, value in values.items():
            if (tag, name) in _FETCHED:
                urls = [part.split()[0] for part in value.split(",") if part.strip()] if name == "srcset" else [value]
                self.found += [Fetch(url, f"<{tag} {name}>") for url in urls]
            elif name == "style":
                self.found += css_urls(value, f"<{tag} style>")
        if tag == "link" and "href" in values and not set(values.get("rel", "").lower().split()) <= _NAVIGATION_RELS:
            self.found.append(Fetch(values["href"], f"<link rel={values.get('rel', '')!r}>"))
        if tag == "meta" and values.get("http-equiv", "").lower() == "refresh":
            target = values.get("content", "").partition("url=")[2] or values.get("content", "").partition("URL=")[2]
            if target:
                self.found.append(Fetch(target.strip(), "<meta refresh>"))
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        if tag == "style":
            self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.found += css_urls(data, "<style>")


def html_fetches(html: str) -> list[Fetch]:
    """Every address `html` makes the browser fetch as it loads (scripts inside <script> are not run)."""
    collector = _Collector()
    collector.feed(html)
    collector.close()
    return collector.found


def file_fetches(path: Path) -> list[Fetch]:
    """The fetches of an .html or .css file."""
    text = path.read_text(encoding="utf-8")
    return css_urls(text) if path.suffix.lower() == ".css" else html_fetches(text)


def remote_fetches(path: Path) -> list[Fetch]:
    """The fetches of an .html or .css file that would leave the machine."""
    return [fetch for fetch in file_fetches(path) if REMOTE.match(fetch.url)]


def local_target(path: Path, url: str) -> Path | None:
    """The file a relative address in `path` names (None for remote, data:, blob: and in-page addresses)."""
    if REMOTE.match(url) or re.match(r"^\s*(?:[a-z][a-z0-9+.-]*:|#)", url, re.IGNORECASE) or not url.strip():
        return None
    return path.parent / url.split("#", 1)[0].split("?", 1)[0]


def relative_link(target: Path, from_file: Path) -> str:
    """The address of `target` as written in `from_file` (forward slashes, relative, so the folder can move)."""
    return Path(os.path.relpath(target, from_file.parent)).as_posix()
