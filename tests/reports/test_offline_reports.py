"""Every kind of report, opened in a real headless Chromium with networking off: each plot draws, the Data
Docs are styled, the model card renders, and no request leaves the machine. Screenshots are kept (the run's
summary names the folder).

The same checks run on a real pipeline's reports in tests/e2e (slow); here they run on small real inputs.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from compiler.emitters.plots_template import TEMPLATE_PATH, render_template
from core.webassets.offline import remote_fetches
from tests.browser import DVC_PLOTS, OfflineBrowser, assert_data_docs_page_styled, assert_every_plot_drew
from tests.conftest import git
from tests.e2e.helpers import dvc

DVC_YAML = """\
plots:
  - loss:
      template: linear
      x: epoch
      y:
        history.csv: [train_loss, val_loss]
  - confusion:
      template: confusion
      x: actual
      y:
        confusion.csv: [predicted]
  - variants:
      template: scatter
      x: latency_ms
      y:
        variants.csv: [accuracy]
  - robustness:
      template: bar_horizontal
      x: accuracy
      y:
        robustness.csv: [condition]
"""


def _write_plot_data(repo: Path, shift: float) -> None:
    (repo / "history.csv").write_text("epoch,train_loss,val_loss\n" + "".join(
        f"{e},{2.0 / (e + 1) + shift:.4f},{2.2 / (e + 1) + shift:.4f}\n" for e in range(8)))
    (repo / "confusion.csv").write_text("actual,predicted\n" + "".join(
        f"{a},{p}\n" for a in "abc" for p in ("abc" if shift else "aab")))
    (repo / "variants.csv").write_text("latency_ms,accuracy\n1.2,0.91\n0.4,0.89\n0.2,0.85\n")
    (repo / "robustness.csv").write_text("condition,accuracy\nclean,0.95\nrain-3,0.82\nfog-3,0.77\n")


@pytest.fixture(scope="module")
def plots_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A DVC repository with the plot kinds the pipeline declares, two commits apart, using the template
    `autodl compile` writes."""
    repo = tmp_path_factory.mktemp("plots")
    git(repo, "init", "-q")
    dvc(repo, "init", "-q")
    (repo / TEMPLATE_PATH).write_text(render_template(), encoding="utf-8")
    dvc(repo, "config", "plots.html_template", Path(TEMPLATE_PATH).name)
    (repo / "dvc.yaml").write_text(DVC_YAML)
    _write_plot_data(repo, 0.0)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "first")
    _write_plot_data(repo, 0.1)
    return repo


@pytest.mark.parametrize("command", [("plots", "show"), ("plots", "diff", "HEAD")], ids=["show", "diff"])
def test_dvc_plots_render_offline(plots_repo: Path, offline_browser: OfflineBrowser, command: tuple[str, ...],
                                  tmp_path: Path) -> None:
    out = tmp_path / "dvc_plots"
    dvc(plots_repo, *command, "-o", str(out))
    page_file = out / "index.html"
    assert remote_fetches(page_file) == []
    visit, page = offline_browser.visit(page_file, f"dvc-plots-{command[1]}")
    results = page.evaluate(DVC_PLOTS)
    page.close()
    assert visit.problems() == []
    assert_every_plot_drew(results, 4)
    if command[1] == "diff":  # both revisions drawn: the workspace's loss curves sit above HEAD's
        assert "HEAD" in page_file.read_text()
        assert "workspace" in page_file.read_text()


def test_data_docs_render_styled_offline(tmp_path: Path, offline_browser: OfflineBrowser) -> None:
    from tests.vision.data.test_data_docs_offline import _docs

    pages = sorted(_docs(tmp_path / "docs").rglob("*.html"))
    assert len(pages) == 3
    for number, page_file in enumerate(pages):
        visit, page = offline_browser.visit(page_file, f"data-docs-{number}-{page_file.stem}")
        assert_data_docs_page_styled(visit, page)
        page.close()


def test_the_model_card_page_renders_offline(tmp_path: Path, offline_browser: OfflineBrowser) -> None:
    from compiler.compile import compile_repo
    from stages import promote
    from tests.stage_runs import run_stage_as_dvc
    from tests.stages.test_promote import _outputs

    _outputs(tmp_path, passed=True)
    compile_repo(tmp_path)
    run_stage_as_dvc("promote", promote.main, "tiny", tmp_path)
    card = tmp_path / "reports/tiny/model_card.html"
    visit, page = offline_browser.visit(card, "model-card")
    assert visit.problems() == []
    assert page.locator("h1").inner_text() == "Model card: tiny"
    headings = page.locator("h2").all_inner_texts()
    assert headings[:3] == ["Performance (test split)", "Dependability", "Limitations"]
    assert "far-OOD AUROC 0.9900" in page.locator("body").inner_text()
    page.close()


def test_the_browser_sees_a_page_that_reaches_for_the_internet(tmp_path: Path, offline_browser: OfflineBrowser,
                                                                 plots_repo: Path) -> None:
    """The checks above can fail: DVC's own page (no template configured) tries the CDN and draws nothing."""
    plain = tmp_path / "plain"
    shutil.copytree(plots_repo, plain)
    dvc(plain, "config", "--unset", "plots.html_template")
    dvc(plain, "plots", "show", "-o", str(tmp_path / "out"))
    visit, page = offline_browser.visit(tmp_path / "out" / "index.html", "dvc-plots-default-template-offline")
    assert any(url.startswith("https://cdn.jsdelivr.net/npm/vega") for url in visit.left_the_machine())
    assert any("vegaEmbed is not defined" in error for error in visit.errors)
    assert page.evaluate(DVC_PLOTS) == []
    page.close()
