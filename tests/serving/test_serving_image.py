"""The predictor image installs exactly the `serving` extra and runs as a non-root numeric user."""

from __future__ import annotations

import tomllib

from tests.conftest import REPO_ROOT


def test_the_image_requirements_are_the_serving_extra() -> None:
    extra = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["serving"]
    lines = (REPO_ROOT / "serving" / "requirements.txt").read_text().splitlines()
    assert [line for line in lines if line and not line.startswith("#")] == extra


def test_the_image_runs_the_model_server_as_a_numeric_non_root_user() -> None:
    dockerfile = (REPO_ROOT / "serving" / "Dockerfile").read_text().splitlines()
    assert 'ENTRYPOINT ["python", "-m", "serving"]' in dockerfile
    user = next(line for line in dockerfile if line.startswith("USER "))
    uid = user.split()[1].split(":")[0]
    assert uid.isdigit()
    assert int(uid) != 0


def test_the_image_copies_every_project_module_the_server_runs() -> None:
    """The predictor image holds no torch and no training code: it copies a short list of files, which must
    cover the server's whole import closure (found by the same AST walk that builds the pipeline's deps)."""
    from core.imports import import_closure
    from core.registry import CODE_PACKAGES

    copied: set[str] = set()
    for line in (REPO_ROOT / "serving" / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY ") and "requirements" not in line:
            *sources, _ = line.split()[1:]
            copied.update(source.rstrip("/") for source in sources)
    needed = {path for module in ("serving.__main__", "serving.app")
              for path in import_closure(module, REPO_ROOT, CODE_PACKAGES)}
    missing = {path for path in needed if not any(path == c or path.startswith(c + "/") for c in copied)}
    assert not missing, f"serving/Dockerfile does not copy {sorted(missing)}"
    assert not any(path.startswith(("stages/", "compiler/", "vision/training", "vision/compression"))
                   for path in needed), "the server imports training or compiler code"
