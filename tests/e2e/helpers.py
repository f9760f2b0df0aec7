"""What every end-to-end test runs: the real `autodl` and `dvc` in a throw-away repository."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def env() -> dict[str, str]:
    env = dict(os.environ, DVC_NO_ANALYTICS="1")
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env["PATH"]  # stage cmds call `python`
    return env


def run(repo: Path, *cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(cmd, cwd=repo, env=env(), capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        pytest.fail(f"{' '.join(cmd)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return done


def autodl(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return run(repo, sys.executable, "-m", "cli.main", *args, check=check)


def dvc(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run(repo, sys.executable, "-m", "dvc", *args)


def changed_stages(repo: Path, project: str) -> set[str]:
    """Stages of `project` that `dvc status` says must re-run."""
    status = json.loads(dvc(repo, "status", "--json").stdout or "{}")
    return {name.removeprefix(f"{project}-") for name in status}
