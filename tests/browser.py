"""Open reports in a real headless Chromium (Debian's package) with networking off, and record what each
page did: every request, every failure, console and script errors, a screenshot.

Networking is off three ways: Chromium runs in its own empty network namespace (`unshare --net`, when the
kernel allows it), Playwright's context is offline, and any request that is not file:, data: or blob: is
aborted and recorded. A report passes only if nothing even tried to leave the machine.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHROMIUM = os.environ.get("AUTODL_CHROMIUM", "/usr/bin/chromium")
LOCAL_SCHEMES = ("file:", "data:", "blob:", "about:")
FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-quic",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-default-apps", "--disable-domain-reliability", "--host-resolver-rules=MAP * ~NOTFOUND",
         "--proxy-server=http://127.0.0.1:9", "--proxy-bypass-list=<-loopback>"]

# JavaScript run in the page. Vega's scenegraph is the ground truth of what a plot drew: marks whose role is
# "mark" are the data (points, bars, line vertices), not axes or legends.
COUNT_MARKS = """
function countMarks(mark) {
  let n = 0;
  for (const item of mark.items || []) {
    if (mark.marktype === 'group') { for (const child of item.items || []) n += countMarks(child); }
    else if (mark.role === 'mark') n += 1;
  }
  return n;
}
"""
INK = """
function ink(canvas) {
  const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  let coloured = 0;
  for (let i = 0; i < data.length; i += 4) {
    if (data[i + 3] > 0 && (data[i] < 235 || data[i + 1] < 235 || data[i + 2] < 235)) coloured += 1;
  }
  return coloured / Math.max(1, canvas.width * canvas.height);
}
"""
DVC_PLOTS = f"""async () => {{
  {COUNT_MARKS}
  {INK}
  const settled = await Promise.allSettled(window.autodlPlots || []);
  return settled.map((result, i) => result.status !== 'fulfilled'
    ? {{ok: false, error: String(result.reason)}}
    : {{ok: true, id: result.value.view.container().closest('div[id]')?.id,
        marks: countMarks(result.value.view.scenegraph().root),
        ink: result.value.view.container().querySelector('canvas')
             ? ink(result.value.view.container().querySelector('canvas')) : null,
        svgMarks: result.value.view.container().querySelectorAll('svg [class^="mark-"] path').length}});
}}"""
VEGA_EMBEDS = f"""() => {{
  {INK}
  return [...document.querySelectorAll('.vega-embed')].map(el => {{
    const canvas = el.querySelector('canvas');
    return {{canvas: canvas ? ink(canvas) : null, svgMarks: el.querySelectorAll('svg [class^="mark-"] path').length}};
  }});
}}"""
IMAGES = """() => [...document.images].map(img => ({src: img.currentSrc.slice(0, 80), loaded: img.complete,
  width: img.naturalWidth, height: img.naturalHeight}))"""


@dataclass
class Visit:
    """What one page did while it loaded and settled."""

    path: Path
    screenshot: Path
    requests: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    """Console errors and uncaught exceptions."""

    def left_the_machine(self) -> list[str]:
        return [url for url in self.requests if not url.startswith(LOCAL_SCHEMES)] + self.blocked

    def problems(self) -> list[str]:
        """Everything that makes the page less than whole offline, plus a missing screenshot."""
        shot = [] if self.screenshot.is_file() and self.screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" else [
            f"no screenshot at {self.screenshot}"]
        return ([f"request left the machine: {u}" for u in self.left_the_machine()]
                + [f"failed: {u}" for u in self.failed] + [f"error: {e}" for e in self.errors] + shot)


def chromium_missing() -> str | None:
    if Path(CHROMIUM).is_file():
        return None
    return (f"{CHROMIUM} not found: the browser tests need Debian's chromium (`make test` installs it; "
            "or set AUTODL_CHROMIUM to a Chromium binary)")


def _isolated_executable(folder: Path) -> tuple[str, str]:
    """A launcher that starts Chromium in a new, empty network namespace, when this kernel lets us."""
    unshare = shutil.which("unshare")
    if unshare and subprocess.run([unshare, "--net", "true"], capture_output=True, check=False).returncode == 0:
        launcher = folder / "chromium-without-network"
        launcher.write_text(f'#!/bin/sh\nexec {unshare} --net {CHROMIUM} "$@"\n')
        launcher.chmod(0o755)
        return str(launcher), "empty network namespace"
    return CHROMIUM, "resolver and proxy blocked"


class OfflineBrowser:
    """One Chromium for a test session; `visit` opens a file and records what it did."""

    def __init__(self, screenshots: Path) -> None:
        from playwright.sync_api import sync_playwright

        self.screenshots = screenshots
        self._scratch = Path(tempfile.mkdtemp(prefix="autodl-chromium-"))
        executable, self.isolation = _isolated_executable(self._scratch)
        self._playwright = sync_playwright().start()
        self._browser = self._playwright.chromium.launch(executable_path=executable, args=FLAGS)
        self.version = self._browser.version
        self._context = self._browser.new_context(viewport={"width": 1280, "height": 900}, offline=True,
                                                  service_workers="block")

    def visit(self, path: Path, name: str, settle: str | None = None) -> tuple[Visit, Any]:
        """Open `path`, wait for the load event (and `settle`, a JS function returning a promise, if given),
        screenshot the full page to `<screenshots>/<name>.png`; returns the record and the live page."""
        visit = Visit(path, self.screenshots / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', name)}.png")
        page = self._context.new_page()
        page.route(re.compile(r"^(?!file:|data:|blob:|about:)"), lambda route: (visit.blocked.append(route.request.url),
                                                                                 route.abort("internetdisconnected")))
        page.on("request", lambda request: visit.requests.append(request.url))
        page.on("requestfailed", lambda request: visit.failed.append(f"{request.url} ({request.failure})"))
        page.on("console", lambda message: visit.errors.append(message.text) if message.type == "error" else None)
        page.on("pageerror", lambda error: visit.errors.append(str(error)))
        page.goto(path.resolve().as_uri(), wait_until="load")
        if settle is not None:
            page.evaluate(settle)
        page.wait_for_timeout(200)  # a frame for late layout and font swaps before the picture
        page.screenshot(path=str(visit.screenshot), full_page=True)
        return visit, page

    def close(self) -> None:
        self._context.close()
        self._browser.close()
        self._playwright.stop()
        shutil.rmtree(self._scratch, ignore_errors=True)


def assert_every_plot_drew(results: list[dict[str, Any]], expected: int) -> None:
    """`results` of DVC_PLOTS: `expected` plots, each embedded without error, with data marks in vega's
    scenegraph and coloured pixels on its canvas."""
    assert len(results) == expected, results
    for result in results:
        assert result["ok"], result
        assert result["marks"] > 0, result
        assert result["ink"] is not None, result
        assert result["ink"] > 0.005, result  # not a blank frame


def assert_data_docs_page_styled(visit: Visit, page: Any) -> None:
    """What GX users expect of a Data Docs page: bootstrap's layout, bootstrap-table, font-awesome's icons
    where the page uses them, the logo, any vega chart drawn, and nothing fetched from elsewhere."""
    assert visit.problems() == []
    state = page.evaluate("""async () => {
      await document.fonts.ready;
      return {navbar: getComputedStyle(document.querySelector('nav.navbar')).display,
              jquery: typeof window.jQuery, table: typeof (window.jQuery && window.jQuery.fn.bootstrapTable),
              icons: document.querySelectorAll('i.fas, i.far, i.fa').length,
              fonts: [...document.fonts].filter(f => f.status === 'loaded').map(f => f.family)};
    }""")
    assert state["navbar"] == "flex", state  # bootstrap's .navbar; the browser default for <nav> is block
    assert state["jquery"] == "function", state
    assert state["table"] == "function", state
    if state["icons"]:
        assert any("Font Awesome" in family for family in state["fonts"]), state
    assert_images_loaded(page)
    embeds = page.evaluate(VEGA_EMBEDS)
    assert all((e["canvas"] or 0) > 0.005 or e["svgMarks"] > 0 for e in embeds), embeds


def assert_images_loaded(page: Any, expected: int | None = None) -> None:
    images = page.evaluate(IMAGES)
    assert images, "the page shows no image"
    assert all(image["loaded"] and image["width"] > 0 and image["height"] > 0 for image in images), images
    if expected is not None:
        assert len(images) == expected, images


def assert_project_reports_render_offline(repo: Path, project: str, browser: OfflineBrowser, scratch: Path,
                                          report_images: int) -> None:
    """A real pipeline's reports, as its users open them: `dvc plots show`, the Data Docs, the dependability
    report (`report_images` figures) and the model card page."""
    from ruamel.yaml import YAML

    from core.webassets.offline import remote_fetches
    from tests.e2e.helpers import dvc

    out = scratch / "dvc_plots"
    dvc(repo, "plots", "show", "-o", str(out))
    declared = YAML(typ="safe").load((repo / "dvc.yaml").read_text(encoding="utf-8"))["plots"]
    assert remote_fetches(out / "index.html") == []
    visit, page = browser.visit(out / "index.html", f"{project}-dvc-plots")
    results = page.evaluate(DVC_PLOTS)
    assert visit.problems() == []
    assert_every_plot_drew(results, len(declared))
    page.close()

    docs = sorted(p for p in (repo / "reports" / project / "validate" / "data_docs").rglob("*.html")
                  if "static" not in p.relative_to(repo).parts)
    assert len(docs) == 3
    for number, page_file in enumerate(docs):
        visit, page = browser.visit(page_file, f"{project}-data-docs-{number}-{page_file.stem}")
        assert_data_docs_page_styled(visit, page)
        page.close()

    visit, page = browser.visit(repo / "reports" / project / "dependability.html", f"{project}-dependability")
    assert visit.problems() == []
    assert_images_loaded(page, report_images)
    assert page.locator("h1").count() == 1
    page.close()

    visit, page = browser.visit(repo / "reports" / project / "model_card.html", f"{project}-model-card")
    assert visit.problems() == []
    assert page.locator("h1").inner_text().startswith(f"Model card: {project}")
    assert page.locator("h2").count() >= 3
    page.close()
