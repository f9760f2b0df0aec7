"""The pipelines: each task's stages in order, assembled from the stage contracts (core.contracts).

The compiler turns them into `dvc.yaml` (a stage's code dependencies are derived from its import closure,
core.imports) and resolves each input reference (`"split": "prune.split"`) to the path the producing stage
writes, which the stage receives on its command line. No stage imports this module: a stage reads its own
contract and the paths it is given, so an edit here re-runs nothing by itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache

from core.contract import ContractError, StageInfo
from core.contracts.cascade import dependability as k_dependability
from core.contracts.cascade import evaluate as k_evaluate
from core.contracts.cascade import gate as k_gate
from core.contracts.cascade import promote as k_promote
from core.contracts.cascade import select as k_select
from core.contracts.classification import compress as c_compress
from core.contracts.classification import dependability as c_dependability
from core.contracts.classification import evaluate as c_evaluate
from core.contracts.classification import export as c_export
from core.contracts.classification import gate as c_gate
from core.contracts.classification import ingest as c_ingest
from core.contracts.classification import prune as c_prune
from core.contracts.classification import train as c_train
from core.contracts.classification import validate as c_validate
from core.contracts.detection import compress as d_compress
from core.contracts.detection import dependability as d_dependability
from core.contracts.detection import ensemble as d_ensemble
from core.contracts.detection import evaluate as d_evaluate
from core.contracts.detection import export as d_export
from core.contracts.detection import gate as d_gate
from core.contracts.detection import ingest as d_ingest
from core.contracts.detection import prune as d_prune
from core.contracts.detection import select as d_select
from core.contracts.detection import synthesize as d_synthesize
from core.contracts.detection import train as d_train
from core.contracts.detection import validate as d_validate
from core.contracts.loop import ensemble as loop_ensemble
from core.contracts.loop import select as loop_select
from core.contracts.multilabel import compress as m_compress
from core.contracts.multilabel import dependability as m_dependability
from core.contracts.multilabel import evaluate as m_evaluate
from core.contracts.multilabel import export as m_export
from core.contracts.multilabel import gate as m_gate
from core.contracts.multilabel import ingest as m_ingest
from core.contracts.multilabel import select as m_select
from core.contracts.multilabel import train as m_train
from core.contracts.multilabel import validate as m_validate
from core.contracts.shared import clean, embed, promote, split
from core.imports import CODE_PACKAGES, CODE_ROOT, import_closure

__all__ = ["CODE_PACKAGES", "CODE_ROOT"]  # re-exported: where the pipeline's code is

STAGES: tuple[StageInfo, ...] = tuple(module.CONTRACT for module in (
    c_ingest, c_validate, embed, clean, split, c_prune, c_train, c_evaluate, c_compress, c_export,
    c_dependability, c_gate, promote))
"""The classification pipeline without the data loop."""
STAGES_BY_NAME: dict[str, StageInfo] = {stage.name: stage for stage in STAGES}

DETECTION_STAGES: tuple[StageInfo, ...] = tuple(module.CONTRACT for module in (
    d_synthesize, d_ingest, d_validate, embed, clean, split, d_prune, d_train, d_evaluate, d_compress, d_export,
    d_dependability, d_gate, promote))
"""The detection pipeline without the data loop."""

MULTILABEL_STAGES: tuple[StageInfo, ...] = tuple(module.CONTRACT for module in (
    m_ingest, m_validate, embed, clean, split, c_prune, m_train, m_evaluate, m_compress, m_export, m_dependability,
    m_gate, promote))
"""The multi-label pipeline (its images' strata stand for classes where the shared stages split and prune)."""

CASCADE_STAGES: tuple[StageInfo, ...] = tuple(module.CONTRACT for module in (k_evaluate, k_dependability, k_gate,
                                                                                k_promote))
"""A cascade's stages: its two models come from their own projects' pipelines (ProjectInput)."""

PIPELINES_WITHOUT_LOOP: dict[str, tuple[StageInfo, ...]] = {
    "classification": STAGES, "detection": DETECTION_STAGES, "multilabel": MULTILABEL_STAGES,
    "cascade": CASCADE_STAGES}


def _with_loop(stages: tuple[StageInfo, ...], ensemble: StageInfo, select: StageInfo) -> tuple[StageInfo, ...]:
    """The task's stages with the loop's: the ensemble right after train (dependability may score with it),
    select last."""
    after_train = [s.name for s in stages].index("train") + 1
    return (*stages[:after_train], ensemble, *stages[after_train:], select)


PIPELINES: dict[str, tuple[StageInfo, ...]] = {
    "classification": _with_loop(STAGES, loop_ensemble.CONTRACT, loop_select.CONTRACT),
    "detection": _with_loop(DETECTION_STAGES, d_ensemble.CONTRACT, d_select.CONTRACT),
    "multilabel": (*MULTILABEL_STAGES, m_select.CONTRACT),
    "cascade": (*CASCADE_STAGES, k_select.CONTRACT),
}
"""Each task's stages in pipeline order (the spec's `task` chooses; stages with `only_when` only where it is
set)."""

def stage_named(name: str, task: str = "classification") -> StageInfo:
    return next(stage for stage in PIPELINES[task] if stage.name == name)


def resolve(reference: str, task: str = "classification") -> tuple[StageInfo, str]:
    """`<stage>.<output name>` -> (the producing stage, the output's path template) in `task`'s pipeline."""
    stage_name, _, output = reference.partition(".")
    stage = next((s for s in PIPELINES[task] if s.name == stage_name), None)
    if stage is None or output not in stage.outputs():
        raise ContractError(f"'{reference}' names no output of a stage")
    return stage, stage.outputs()[output]


def dvc_dependency(reference: str, task: str = "classification") -> str:
    """The path template DVC tracks for an input: the output itself, or the output folder holding the file."""
    stage, path = resolve(reference, task)
    if path in stage.dvc_outputs():
        return path
    return next(out for out in sorted(stage.dvc_outputs()) if path.startswith(out.rstrip("/") + "/"))


def resolved_inputs(info: StageInfo, project: str, given: set[str] = frozenset(),
                    others: Mapping[str, str] | None = None) -> dict[str, str]:
    """The paths of the stage's inputs in `project` (what its command names, `--input split=...`), in the
    contract's order: every declared input, each optional input whose spec key is among `given`, and each other
    project's output whose spec key `others` maps to that project's name."""
    names = [*info.inputs.items(),
             *((name, reference) for name, (reference, key) in info.optional_inputs.items() if key in given)]
    paths = {name: resolve(reference, info.task)[1].format(project=project) for name, reference in names}
    others = others or {}
    for name, other in info.project_inputs.items():
        if others.get(other.key):
            paths[name] = resolve(other.reference, other.task)[1].format(project=others[other.key])
    return paths


def project_dependencies(info: StageInfo, others: Mapping[str, str]) -> list[str]:
    """The paths DVC tracks for the stage's inputs from other projects (`others`: spec key -> project name)."""
    return [dvc_dependency(other.reference, other.task).format(project=others[other.key])
            for other in info.project_inputs.values() if others.get(other.key)]


def stage_arguments(info: StageInfo, project: str, given: set[str] = frozenset(),
                    others: Mapping[str, str] | None = None) -> list[str]:
    """The stage's command-line arguments after `python -m <module>`: the project and every input's path."""
    return ["--project", project,
            *(argument for name, path in resolved_inputs(info, project, given, others).items()
              for argument in ("--input", f"{name}={path}"))]


def code_dependencies(info: StageInfo) -> tuple[str, ...]:
    """Every project file the stage's module runs (its static import closure) and the data files its code
    reads: an edit to any of them re-runs the stage."""
    return (*_closure(info.module), *info.data_files)


@cache
def _closure(module: str) -> tuple[str, ...]:
    return import_closure(module, CODE_ROOT, CODE_PACKAGES)
