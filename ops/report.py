"""`autodl report`: the markdown a pull request shows, per project, after `dvc repro`.

Metric changes against the base revision come from `dvc metrics diff --md`
(DVC's own table, run as a subprocess: the compiler imports no ML or DVC code);
the gate's verdict is the summary the gate stage wrote; plots and reports are
linked by path.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from compiler.load import LoadedSpec
from compiler.plan import plan

MAX_SECTION_CHARS = 20_000
"""GitHub comments are limited to 65,536 characters; each project's section stays well below."""


def metrics_diff(root: Path, rev: str, metric_files: list[str]) -> str:
    done = subprocess.run([sys.executable, "-m", "dvc", "metrics", "diff", rev, "--md", "--targets", *metric_files],
                          cwd=root, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return f"_`dvc metrics diff {rev}` failed: {done.stderr.strip().splitlines()[-1] if done.stderr else ''}_"
    table = done.stdout.strip()
    return table if len(table.splitlines()) > 2 else f"_No metric changed against `{rev}`._"  # header only


def project_section(root: Path, loaded: LoadedSpec, rev: str) -> str:
    project = loaded.spec.name
    stages = plan(loaded.spec, loaded.path).stages
    metric_files = [path for stage in stages for path in stage.metrics]
    written = [path for stage in stages for path in stage.written()]
    shown = ("dependability.html", "validate/data_docs/index.html", "model_card.html", "export/pareto.png")
    pages = [path for path in (f"reports/{project}/{page}" for page in shown)
             if any(path == out or path.startswith(out.rstrip("/") + "/") for out in written)]  # this task's pages
    summary = root / "reports" / project / "gate" / "summary.md"
    verdict = (summary.read_text(encoding="utf-8").strip() if summary.is_file()
               else f"### {project}: no gate verdict yet (run `dvc repro`)")
    verdict = "\n".join(line for line in verdict.splitlines() if not line.startswith("<!--"))
    section = "\n\n".join([
        verdict,
        f"#### Metrics changed against `{rev}`\n\n{metrics_diff(root, rev, metric_files)}",
        "#### Reports\n\n" + "\n".join(f"- `{path}`" for path in pages)
        + "\n- plots: `dvc plots diff` against the base revision (every report opens offline)",
    ])
    return section if len(section) <= MAX_SECTION_CHARS else section[:MAX_SECTION_CHARS] + "\n\n_(cut)_"


def report(root: Path, specs: list[LoadedSpec], rev: str) -> str:
    sections = [project_section(root, loaded, rev) for loaded in sorted(specs, key=lambda s: s.spec.name)]
    return "## autodl report\n\n" + "\n\n---\n\n".join(sections) + "\n"
