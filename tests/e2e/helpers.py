"""What every end-to-end test runs: the real `autodl` and `dvc` in a throw-away repository."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from ops.workspace import command_environment


def env() -> dict[str, str]:
    return command_environment()


def run(repo: Path, *cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(cmd, cwd=repo, env=env(), capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        pytest.fail(f"{' '.join(cmd)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return done


def autodl(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return run(repo, sys.executable, "-m", "cli.main", *args, check=check)


def dvc(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run(repo, sys.executable, "-m", "dvc", *args)


def project_repo(folder: Path, specs: dict[str, str]) -> Path:
    """`folder` holding the project's code and the given specs (name -> YAML text, written as specs/<name>.yaml),
    before git, DVC or `autodl compile` touch it."""
    from ops.workspace import copy_project_code

    copy_project_code(folder)
    (folder / "specs").mkdir()
    for name, text in specs.items():
        (folder / "specs" / f"{name}.yaml").write_text(text)
    return folder


def pool_clone(repo: Path, folder: Path, project: str, count: int) -> Path:
    """A copy of `repo` in `folder` with a `pool/` of `count` unlabelled images: the project's synthesized
    images mirrored (unseen pixels, the same kind of scene), for a data-loop round."""
    from PIL import Image

    shutil.copytree(repo, folder, symlinks=True)
    (folder / "pool").mkdir()
    for image in sorted((folder / f"data/{project}/synthesize/images").glob("*.png"))[:count]:
        Image.open(image).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(folder / "pool" / image.name)
    return folder


def stages_run(log: str, project: str) -> list[str]:
    """The stages of `project` a `dvc repro` output says it ran, in order, without the project's prefix."""
    return re.findall(rf"Running stage '{re.escape(project)}-([\w-]+)'", log)


def compile_and_repro(repo: Path) -> Path:
    """A user's first run of a fresh repository holding the project's code and specs: git and DVC set up as the
    README says, `autodl compile`, a full `dvc repro` (its output kept in `repro.log`), everything committed."""
    from tests.conftest import git

    git(repo, "init", "-q")
    dvc(repo, "init", "-q")
    dvc(repo, "config", "plots.html_template", "offline-plots.html")  # as `autodl compile` advises
    autodl(repo, "compile")
    repro = dvc(repo, "repro")
    (repo / "repro.log").write_text(repro.stdout + repro.stderr)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "first run")
    return repo


def changed_stages(repo: Path, project: str) -> set[str]:
    """Stages of `project` that `dvc status` says must re-run."""
    status = json.loads(dvc(repo, "status", "--json").stdout or "{}")
    return {name.removeprefix(f"{project}-") for name in status}


@contextmanager
def autodl_serve(repo: Path, spec: str, log: Path) -> Iterator[str]:
    """`autodl serve <spec>` over the repository's promoted model on a free port, as a user starts it; yields the
    base URL once the server says it is ready, and stops the server afterwards."""
    from tests.conftest import REPO_ROOT, free_port

    port = free_port()
    with log.open("w") as output:
        process = subprocess.Popen([sys.executable, "-m", "cli.main", "--root", str(repo), "serve", spec, "--port",
                                    str(port)], cwd=REPO_ROOT, env=env(), stdout=output, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    base, deadline = f"http://127.0.0.1:{port}", time.monotonic() + 90
    try:
        while not _ready(base):
            if time.monotonic() > deadline or process.poll() is not None:
                pytest.fail(f"autodl serve did not answer:\n{log.read_text()}")
            time.sleep(0.3)
        yield base
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


def _ready(base: str) -> bool:
    try:
        return httpx.get(f"{base}/v2/health/ready", timeout=5).status_code == 200
    except httpx.TransportError:
        return False
