"""Run a stage's CLI in a test as `dvc repro` would: its own contract, and its inputs' paths on the command
line as `autodl compile` writes them into dvc.yaml."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from core.registry import stage_arguments, stage_named
from stages.runtime import StageContext, run_stage


def run_stage_as_dvc(name: str, body: Callable[[StageContext], None], project: str, root: Path,
                     task: str = "classification", given: set[str] = frozenset()) -> None:
    """`name`'s stage of `task` on `project` under `root`; `given`: the spec keys of optional inputs that are set."""
    info = stage_named(name, task)
    run_stage(info, body, [*stage_arguments(info, project, given), "--root", str(root)])
