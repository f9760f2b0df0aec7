"""The stage registry is the contract: stages get exactly their declared params, and the graph is sound."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from compiler.spec import ProjectSpec
from stages._cli import declared_params
from stages.registry import STAGES
from tests.conftest import REPO_ROOT

SPEC = ProjectSpec.model_validate(
    {"name": "p", "classes": ["0", "1"], "data": {"sources": [{"kind": "sklearn_digits"}]}}, strict=False)
PARAMS = {"p": SPEC.model_dump(mode="json")}


def test_declared_params_hold_exactly_the_declared_keys() -> None:
    subset = declared_params(PARAMS, "p", ("seed", "data.split"))
    assert subset == {"seed": 0, "data": {"split": PARAMS["p"]["data"]["split"]}}
    with pytest.raises(KeyError):
        _ = subset["data"]["pruning"]
    with pytest.raises(KeyError):
        _ = subset["serving"]


@pytest.mark.parametrize("stage", STAGES, ids=lambda s: s.name)
def test_every_declared_key_exists_in_the_spec(stage) -> None:
    declared_params(PARAMS, "p", stage.params)  # raises KeyError on a key the spec does not have


@pytest.mark.parametrize("stage", STAGES, ids=lambda s: s.name)
def test_every_stage_has_a_module_with_a_main_and_existing_code_deps(stage) -> None:
    for path in stage.code:
        assert (REPO_ROOT / path).is_file(), path
    assert f"stages/{stage.name}.py" in stage.code
    module = importlib.import_module(stage.module)
    assert callable(module.main)


def test_every_dependency_is_produced_by_an_earlier_stage() -> None:
    produced: list[str] = []
    for stage in STAGES:
        for dep in stage.deps:
            assert any(dep == out or dep.startswith(out + "/") for out in produced), f"{stage.name} reads {dep}"
        produced.extend((*stage.outs, *stage.reports, *stage.metrics))


def test_outputs_live_under_the_conventional_folders() -> None:
    for stage in STAGES:
        for path in (*stage.outs, *stage.reports, *stage.metrics, *(p.path for p in stage.plots)):
            top, project = Path(path).parts[:2]
            assert top in {"data", "models", "reports"} or (stage.name, top) == ("promote", "k8s"), path
            assert project == "{project}", path
