"""The model card's HTML page: CommonMark with tables, no raw HTML from the markdown, nothing fetched."""

from __future__ import annotations

from core.html_page import markdown_page
from core.webassets.offline import html_fetches


def test_markdown_becomes_a_self_contained_page() -> None:
    page = markdown_page("<!-- banner -->\n# Card\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n- `code`\n", "Card: x", "test")
    assert page.startswith("<!DOCTYPE html>")
    assert "<h1>Card</h1>" in page
    assert "<td>1</td>" in page
    assert "<code>code</code>" in page
    assert "banner" not in page  # the markdown's banner is replaced by the page's own do-not-edit line
    assert html_fetches(page) == []


def test_markup_in_the_markdown_stays_text() -> None:
    """A class name like `<img src=x onerror=...>` from a spec must not become markup in the card."""
    page = markdown_page('# Classes: <script>alert(1)</script>, <img src="https://evil.example/x.png">\n',
                         "<title>", "test")
    assert "<script>alert" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert html_fetches(page) == []
    assert "<title>&lt;title&gt;</title>" in page
