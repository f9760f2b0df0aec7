"""The GitHub workflows: valid against the GitHub workflow schema and running what the README promises."""

from __future__ import annotations

import re
import subprocess
import sys

from ruamel.yaml import YAML

from tests.conftest import MINIMAL_SPEC, REPO_ROOT

WORKFLOWS = REPO_ROOT / ".github" / "workflows"


def _steps(name: str) -> list[str]:
    workflow = YAML(typ="safe", pure=True).load((WORKFLOWS / name).read_text())
    return [step.get("run", "") for job in workflow["jobs"].values() for step in job["steps"]]


def test_workflows_pass_the_github_workflow_schema() -> None:
    files = sorted(str(p) for p in WORKFLOWS.glob("*.yml"))
    assert len(files) == 2
    done = subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows",
                           *files], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_pull_request_workflow_checks_tests_runs_and_reports() -> None:
    runs = "\n".join(_steps("pull-request.yml"))
    readme = (REPO_ROOT / "README.md").read_text()
    assert "make test   #" in readme  # the README's test command is the one CI and this workflow run
    for command in ("make test", "autodl compile --check", "dvc repro", "autodl report", "gh pr comment",
                    "autodl impact"):
        assert command in runs, command


def test_the_main_workflow_publishes_with_credentials_from_secrets_only() -> None:
    text = (WORKFLOWS / "main.yml").read_text()
    runs = _steps("main.yml")
    pushed = next(i for i, run in enumerate(runs) if "dvc push" in run)
    published = next(i for i, run in enumerate(runs) if "autodl publish" in run)
    assert pushed < published  # the bundle KServe loads is published only after the outputs are in the remote
    for line in text.splitlines():
        if re.search(r"(KEY|SECRET|TOKEN|PASSWORD)\w*:", line):
            assert "${{ secrets." in line, line


def test_report_says_when_the_pipeline_has_not_run(repo, write_spec) -> None:
    write_spec("alpha", MINIMAL_SPEC.format(name="alpha"))
    done = subprocess.run([sys.executable, "-m", "cli.main", "--root", str(repo), "report"],
                          cwd=REPO_ROOT, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("## autodl report")
    assert "### alpha: no gate verdict yet (run `dvc repro`)" in done.stdout
    assert "`dvc metrics diff HEAD` failed" in done.stdout  # no git, no DVC here: said, not hidden
