"""The stage registry is the contract: stages get exactly their declared params, read and write only named
inputs and outputs, depend on every module they run, and the graph is sound."""

from __future__ import annotations

import ast
import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from core.contract import ContractError, StageInfo
from core.imports import CODE_PACKAGES, import_closure, runs_no_code
from core.registry import (
    PIPELINES,
    STAGES,
    STAGES_BY_NAME,
    code_dependencies,
    dvc_dependency,
    resolve,
    resolved_inputs,
)
from core.spec import ProjectSpec
from stages.runtime import StageContext, StageFailure, declared_params
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
def test_every_stage_has_a_module_with_a_main(stage) -> None:
    assert callable(importlib.import_module(stage.module).main)
    assert all((REPO_ROOT / path).exists() for path in stage.data_files)


@pytest.mark.slow  # one fresh interpreter per stage, each importing torch
@pytest.mark.parametrize("stage", STAGES, ids=lambda s: s.name)
def test_every_module_a_stage_runs_is_a_dependency_of_that_stage_in_dvc_yaml(stage) -> None:
    """Checked against the interpreter, not against the AST walk that builds the list: import the stage in a
    fresh interpreter and compare the project files it loaded with the stage's deps in the real dvc.yaml."""
    probe = ("import importlib, json, sys; importlib.import_module(sys.argv[1]); "
             "print(json.dumps(sorted(m.__file__ for m in list(sys.modules.values()) "
             "if getattr(m, '__file__', None))))")
    done = subprocess.run([sys.executable, "-c", probe, stage.module], cwd=REPO_ROOT, capture_output=True,
                          text=True, check=True)
    loaded = {Path(f).resolve() for f in json.loads(done.stdout)}
    project = {p.relative_to(REPO_ROOT).as_posix() for p in loaded if p.is_relative_to(REPO_ROOT)
               and p.relative_to(REPO_ROOT).parts[0] in set(CODE_PACKAGES)}
    dvc_yaml = YAML(typ="safe").load((REPO_ROOT / "dvc.yaml").read_text())
    deps = set(dvc_yaml["stages"][f"digits-{stage.name}"]["deps"])
    # a file is listed itself or through a directory that holds it (core.imports.compact_paths); a package's
    # docstring-only __init__.py runs nothing and need not be
    missing = {f for f in project if not any(f == d or f.startswith(f"{d}/") for d in deps)
               and not runs_no_code(REPO_ROOT / f)}
    assert not missing, f"{stage.name} runs {sorted(missing)} but dvc.yaml does not list them as dependencies"
    assert set(code_dependencies(stage)) >= project


def test_every_input_names_an_output_of_an_earlier_stage() -> None:
    order = [stage.name for stage in STAGES]
    for stage in STAGES:
        for name, reference in stage.inputs.items():
            producer, _ = resolve(reference)
            assert order.index(producer.name) < order.index(stage.name), f"{stage.name}.{name} <- {reference}"
            assert dvc_dependency(reference) in producer.dvc_outputs()


def test_a_reference_to_nothing_is_refused() -> None:
    with pytest.raises(ContractError):
        resolve("prune.nothing")
    with pytest.raises(ContractError):
        resolve("nostage.split")


def test_files_live_inside_their_stage_s_outputs() -> None:
    for stage in STAGES:
        for name, path in stage.files.items():
            assert any(path.startswith(out + "/") for out in stage.outs.values()), f"{stage.name}.{name}"


def test_outputs_live_under_the_conventional_folders() -> None:
    for stage in STAGES:
        for path in stage.outputs().values():
            top, project = Path(path).parts[:2]
            assert top in {"data", "models", "reports"} or (stage.name, top) == ("promote", "k8s"), path
            assert project == "{project}", path


def test_params_are_read_validated_into_the_spec_s_models(tmp_path: Path) -> None:
    from core.spec.deployment import CompressSection
    from core.spec.training import TrainSection

    info = STAGES_BY_NAME["compress"]
    ctx = StageContext(info, "p", declared_params(PARAMS, "p", info.params), tmp_path)
    compression, train = ctx.spec("compress"), ctx.spec("train")
    assert isinstance(compression, CompressSection)
    assert isinstance(train, TrainSection)
    assert train.hpo is None  # not declared by compress: the default, never the project's value
    assert ctx.spec("seed") == 0
    with pytest.raises(KeyError):
        ctx.spec("data.split")
    broken = StageContext(info, "p", {**ctx.params, "seed": "x"}, tmp_path)
    with pytest.raises(StageFailure, match=r"params\.yaml seed is not valid"):
        broken.spec("seed")


def test_a_stage_asks_only_for_declared_names(tmp_path: Path) -> None:
    info = STAGES_BY_NAME["train"]
    ctx = StageContext(info, "p", {}, tmp_path, resolved_inputs(info, "p"))
    assert ctx.input("split") == tmp_path / "data/p/prune/split.csv"
    assert ctx.output("study") == tmp_path / "models/p/hpo"
    with pytest.raises(ContractError, match="declares no input 'embeddings'"):
        ctx.input("embeddings")
    assert StageContext(STAGES_BY_NAME["split"], "p", {}, tmp_path).inside("split") == "split.csv"


def _declared_file_names() -> set[str]:
    return {Path(path).name for stage in STAGES for path in stage.outputs().values() if Path(path).suffix}


@pytest.mark.parametrize("stage", STAGES, ids=lambda s: s.name)
def test_no_stage_module_reads_by_position_or_by_a_declared_file_name(stage) -> None:
    """Inputs and outputs by name only: no ctx.dep(i)/out(i)-style indexing, and no string literal equal to a file
    name the registry declares (that name lives in the registry alone)."""
    tree = ast.parse((REPO_ROOT / "stages" / f"{stage.name}.py").read_text(encoding="utf-8"))
    names = _declared_file_names()
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Name) and node.func.value.id == "ctx"
                and node.func.attr in ("dep", "out", "metric", "plot", "path")):
            pytest.fail(f"stages/{stage.name}.py:{node.lineno} calls ctx.{node.func.attr}(): use a named input/output")
        if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Attribute) and node.value.attr in (
                "deps", "outs", "reports", "metrics"):
            pytest.fail(f"stages/{stage.name}.py:{node.lineno} indexes the contract by position")
        if (isinstance(node, ast.Subscript) and isinstance(node.value, ast.Attribute)
                and node.value.attr == "params"):
            pytest.fail(f"stages/{stage.name}.py:{node.lineno} reads a raw param: use ctx.spec(key)")
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            assert node.value not in names, f"stages/{stage.name}.py:{node.lineno} spells out {node.value!r}"


def test_a_declared_key_under_an_unset_section_reads_as_unset_and_a_stale_params_file_is_a_clear_error() -> None:
    from stages.runtime import StageFailure, declared_params

    assert declared_params({"p": {"active_learning": None, "seed": 1}}, "p", ("seed", "active_learning.ensemble")) \
        == {"seed": 1, "active_learning": None}
    with pytest.raises(StageFailure, match="run `autodl compile`"):
        declared_params({"p": {"seed": 1}}, "p", ("active_learning.ensemble",))


def _contract_file(info: StageInfo) -> str:
    """The module under core/contracts/ that declares `info` as its CONTRACT."""
    import pkgutil

    import core.contracts

    for found in pkgutil.walk_packages(core.contracts.__path__, "core.contracts."):
        module = importlib.import_module(found.name)
        if getattr(module, "CONTRACT", None) is info:
            return module.__file__.removeprefix(str(REPO_ROOT) + "/")  # type: ignore[union-attr]
    raise AssertionError(f"no module declares {info.name}'s contract")


@pytest.mark.parametrize(("task", "stage"), [(task, stage) for task, stages in PIPELINES.items() for stage in stages],
                         ids=lambda value: value if isinstance(value, str) else value.name)
def test_a_stage_depends_on_its_own_contract_and_no_other(task: str, stage: StageInfo) -> None:
    """Editing one stage's contract must re-run that stage only: its code dependencies hold its own contract
    module (and the base form it extends), never another stage's, and never the registry."""
    own = _contract_file(stage)
    contracts = {path for path in code_dependencies(stage)
                 if path.startswith("core/contracts/") and not path.endswith("__init__.py")}
    # what the contract itself is built from (a base form, the train stage an ensemble copies) and nothing else
    derived_from = {path for path in import_closure(own.removesuffix(".py").replace("/", "."), REPO_ROOT,
                                                    CODE_PACKAGES) if path.startswith("core/contracts/")}
    assert own in contracts
    assert contracts <= derived_from, f"{task} {stage.name} depends on {sorted(contracts - derived_from)}"
    assert "core/registry.py" not in code_dependencies(stage)


def test_a_classifier_s_stages_run_no_detection_code() -> None:
    for stage in PIPELINES["classification"]:
        detection = [p for p in code_dependencies(stage) if p.startswith(("vision/detection/", "stages/detection/"))]
        assert not detection, f"{stage.name} depends on {detection}"


@pytest.mark.parametrize(("arguments", "message"), [
    (["--input", "split"], "is not name=path"),
    (["--input", "split="], "is not name=path"),
    (["--input", "boxes=data/p/ingest/boxes.csv"], "declares no such input"),
    (["--input", "split=a.csv", "--input", "split=b.csv"], "is given twice"),
])
def test_a_stage_refuses_input_arguments_its_contract_does_not_declare(arguments: list[str], message: str,
                                                                      tmp_path: Path, capsys) -> None:
    from stages.runtime import run_stage

    ran: list[object] = []
    with pytest.raises(SystemExit) as exit_code:
        run_stage(STAGES_BY_NAME["prune"], ran.append, ["--project", "p", "--root", str(tmp_path), *arguments])
    assert exit_code.value.code == 1
    assert message in capsys.readouterr().err
    assert not ran


def test_a_stage_run_without_its_input_paths_says_how_to_run_it(tmp_path: Path) -> None:
    ctx = StageContext(STAGES_BY_NAME["prune"], "p", {}, tmp_path)
    with pytest.raises(StageFailure, match=r"no --input split=<path> was given: run the stage through `dvc repro`"):
        ctx.input("split")


@pytest.mark.parametrize(("task", "stage"), [(task, stage) for task, stages in PIPELINES.items() for stage in stages],
                         ids=lambda value: value if isinstance(value, str) else value.name)
def test_a_stage_reads_the_spec_key_of_every_input_it_may_skip(task: str, stage: StageInfo) -> None:
    """An optional input or another project's output is read only when its spec key is set: the stage must be
    given that key (its params), or asking for the input fails at run time."""
    keys = [key for _, key in stage.optional_inputs.values()] + [o.key for o in stage.project_inputs.values()]
    for key in keys:
        assert any(key == p or key.startswith(p + ".") for p in stage.params), f"{stage.name} reads {key}"
