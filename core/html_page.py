"""A markdown document as one self-contained HTML page: styles inline, nothing fetched, safe to open offline.

The model card is markdown (pull requests and Git hosts render it); the people who deploy a model on a
machine without internet read the HTML written beside it. markdown-it-py renders CommonMark plus tables with
raw HTML off, so a class name or a path in the card can never become markup or script.
"""

from __future__ import annotations

import html

from markdown_it import MarkdownIt

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; max-width: 60rem; margin: 2rem auto;
       padding: 0 1rem; color: #1a202c; line-height: 1.5; }
h1 { border-bottom: 2px solid #2b6cb0; padding-bottom: .3rem; }
h2 { margin-top: 2rem; color: #2b6cb0; }
code { background: #edf2f7; padding: .1rem .3rem; border-radius: 3px; font-size: .9em; word-break: break-all; }
table { border-collapse: collapse; margin: 1rem 0; }
th, td { border: 1px solid #cbd5e0; padding: .3rem .6rem; text-align: left; }
th { background: #edf2f7; }
"""


def markdown_page(markdown: str, title: str, generator: str) -> str:
    """The HTML page for `markdown`; HTML comments at its top (do-not-edit banners) become the page's own."""
    lines = markdown.splitlines()
    leading = next((i for i, line in enumerate(lines) if not line.startswith("<!--")), len(lines))
    body = MarkdownIt("commonmark", {"html": False}).enable("table").render("\n".join(lines[leading:]))
    return "\n".join([
        "<!DOCTYPE html>",
        f"<!-- Written by {html.escape(generator)}; do not edit: it is rendered from the markdown beside it. -->",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(title)}</title>",
        f"<style>{STYLE}</style>",
        "</head>",
        "<body>",
        body.rstrip(),
        "</body>",
        "</html>",
        "",
    ])
