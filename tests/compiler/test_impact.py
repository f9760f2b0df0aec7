"""`autodl impact`: which stages re-run, and why: against a git baseline (`--rev`), and by default against the
last run as real DVC sees it (dvc.lock and `dvc status`)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ops.workspace import command_environment, copy_project_code
from tests.conftest import MINIMAL_SPEC, git

SPEC = MINIMAL_SPEC.format(name="alpha")


@pytest.fixture
def committed(repo: Path, write_spec, run_autodl) -> Path:
    write_spec("alpha", SPEC)
    run_autodl("compile")
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "baseline")
    return repo


def _impact(run_autodl, *extra: str) -> dict[str, dict]:
    code, out, err = run_autodl("impact", "specs/alpha.yaml", "--json", *(extra or ("--rev", "HEAD")))
    assert code == 0, err
    return {row["stage"]: row for row in json.loads(out)}


def _edit(repo: Path, text: str) -> None:
    (repo / "specs" / "alpha.yaml").write_text(SPEC + text)


def _rerun(result: dict[str, dict]) -> list[str]:
    return [name for name, row in result.items() if row["reruns"]]


def test_unchanged_spec_reruns_nothing(committed: Path, run_autodl) -> None:
    assert _rerun(_impact(run_autodl)) == []


def test_serving_edit_reruns_nothing(committed: Path, run_autodl) -> None:
    _edit(committed, "serving: {max_replicas: 9}\n")
    assert _rerun(_impact(run_autodl)) == []


def test_training_edit_reruns_train_and_downstream_with_reasons(committed: Path, run_autodl) -> None:
    _edit(committed, "train: {epochs: 3}\n")
    result = _impact(run_autodl)
    assert _rerun(result) == ["alpha-train", "alpha-evaluate", "alpha-compress", "alpha-export",
                              "alpha-dependability", "alpha-gate", "alpha-promote"]
    assert result["alpha-train"]["reasons"] == ["param alpha.train.epochs: 15 -> 3"]
    assert result["alpha-evaluate"]["reasons"] == ["reads outputs of alpha-train, which re-runs"]
    assert result["alpha-compress"]["reasons"] == ["param alpha.train.epochs: 15 -> 3",
                                                   "reads outputs of alpha-train, which re-runs"]
    assert result["alpha-export"]["reasons"] == ["reads outputs of alpha-train, which re-runs",
                                                 "reads outputs of alpha-compress, which re-runs"]
    assert result["alpha-gate"]["reasons"] == ["reads outputs of alpha-export, which re-runs",
                                               "reads outputs of alpha-dependability, which re-runs"]


def test_a_threshold_edit_re_judges_without_re_measuring(committed: Path, run_autodl) -> None:
    _edit(committed, "dependability: {min_accuracy: 0.99, calibration: {max_ece: 0.02}}\n")
    result = _impact(run_autodl)
    assert _rerun(result) == ["alpha-gate", "alpha-promote"]
    assert result["alpha-gate"]["reasons"] == ["param alpha.dependability.calibration.max_ece: 0.05 -> 0.02",
                                               "param alpha.dependability.min_accuracy: 0.9 -> 0.99"]


def test_split_edit_reruns_split_and_everything_after_it(committed: Path, run_autodl) -> None:
    _edit(committed, "  split: {train: 0.8, val: 0.1, test: 0.1}\n")
    result = _impact(run_autodl)
    assert _rerun(result) == ["alpha-split", "alpha-prune", "alpha-train", "alpha-evaluate", "alpha-compress",
                              "alpha-export", "alpha-dependability", "alpha-gate", "alpha-promote"]
    assert result["alpha-split"]["reasons"] == ["param alpha.data.split.test: 0.15 -> 0.1",
                                                "param alpha.data.split.train: 0.7 -> 0.8",
                                                "param alpha.data.split.val: 0.15 -> 0.1"]
    assert result["alpha-prune"]["reasons"] == ["reads outputs of alpha-split, which re-runs"]
    assert result["alpha-train"]["reasons"] == ["reads outputs of alpha-prune, which re-runs"]


def test_baseline_is_the_git_revision_not_the_working_tree(committed: Path, run_autodl) -> None:
    _edit(committed, "seed: 5\n")
    run_autodl("compile")  # the working tree now matches the spec, HEAD does not
    assert "alpha-split" in _rerun(_impact(run_autodl))


def test_human_readable_report(committed: Path, run_autodl) -> None:
    _edit(committed, "train: {epochs: 3}\n")
    code, out, _ = run_autodl("impact", "specs/alpha.yaml", "--rev", "HEAD")
    assert code == 0
    assert out.splitlines()[0] == ("alpha: 7 of 13 stages re-run (specs/alpha.yaml against params.yaml/dvc.yaml "
                                   "from git HEAD)")
    assert "    - param alpha.train.epochs: 15 -> 3" in out


def test_invalid_spec_is_reported_not_analysed(committed: Path, run_autodl) -> None:
    _edit(committed, "train: {epochs: 0}\n")
    code, _, err = run_autodl("impact", "specs/alpha.yaml")
    assert code == 2
    assert "specs/alpha.yaml:6:17: train.epochs: must be >= 1 (got 0)" in err


def _dvc_status(repo: Path) -> set[str]:
    done = subprocess.run([sys.executable, "-m", "dvc", "status", "--json"], cwd=repo, capture_output=True, text=True,
                          check=True, env=command_environment())
    return set(json.loads(done.stdout or "{}"))


def test_a_new_project_runs_every_stage_and_impact_agrees_with_dvc_status(repo: Path, write_spec,
                                                                          run_autodl) -> None:
    """The last run is what `dvc repro` compares with: a project that never ran runs whole, before and after
    compile (against git, both would say nothing or 'new stage'), and the stages impact flags for a reason of
    their own are the ones real `dvc status` lists."""
    copy_project_code(repo)
    write_spec("alpha", SPEC)
    git(repo, "init", "-q")
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=repo, check=True)
    # uncommitted and not compiled: dvc.yaml does not exist, so DVC knows no stage yet
    code, out, _ = run_autodl("impact", "specs/alpha.yaml")
    assert code == 0
    assert out.startswith("alpha: 13 of 13 stages re-run")
    assert "note: dvc.yaml/params.yaml do not match this spec yet: run `autodl compile` first" in out
    assert _dvc_status(repo) == set()
    run_autodl("compile")
    result = _impact(run_autodl, "--json")
    assert all(row["reruns"] and row["reasons"][0] == "has not run yet (no dvc.lock entry)" for row in result.values())
    assert {name for name, row in result.items() if row["direct"]} == _dvc_status(repo) == set(result)
    code, out, _ = run_autodl("impact", "specs/alpha.yaml")
    assert "note:" not in out
