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
