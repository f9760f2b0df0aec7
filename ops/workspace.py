"""Another repository holding this project's code, as a user's clone does: where the tests' and the benchmarks'
fresh projects run `autodl compile` and `dvc repro` without touching this one."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from core.imports import CODE_PACKAGES

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def copy_project_code(target: Path) -> None:
    """What a clone of this repository holds besides specs and generated files."""
    for folder in CODE_PACKAGES:
        shutil.copytree(PROJECT_ROOT / folder, target / folder, ignore=shutil.ignore_patterns("__pycache__"))
    # stages depend on whole code directories: byte code Python writes into them must stay invisible to DVC
    shutil.copy2(PROJECT_ROOT / ".dvcignore", target / ".dvcignore")


def command_environment() -> dict[str, str]:
    """The environment for `dvc` in such a repository: no analytics, and this interpreter first on PATH, since
    the stages' commands call `python`."""
    env = dict(os.environ, DVC_NO_ANALYTICS="1")
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env["PATH"]
    return env
