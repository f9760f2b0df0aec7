"""Plan: ProjectSpec -> Pipeline. Pure: reads the stage registry and the project's own source files (for
each stage's code dependencies), writes nothing."""

from __future__ import annotations

from dataclasses import replace

from compiler.ir import Pipeline, Stage
from core.contract import StageInfo, WhenSet
from core.imports import CODE_ROOT, compact_paths
from core.registry import PIPELINES, code_dependencies, dvc_dependency, project_dependencies, stage_arguments
from core.spec import ProjectSpec
from core.spec.data import (
    PROJECT_SOURCES,
    CocoSource,
    LabelStudioSource,
    PhotoMosaicsSource,
    SklearnDigitsSource,
    Source,
    VideoSource,
)
from core.spec.loop import PoolSource


def plan(spec: ProjectSpec, spec_path: str) -> Pipeline:
    stages = (info for info in PIPELINES[spec.task] if not info.only_when or _lookup(spec, info.only_when) is not None)
    return Pipeline(spec.name, spec_path, tuple(_stage(info, spec) for info in stages))


def _stage(info: StageInfo, spec: ProjectSpec) -> Stage:
    project = spec.name

    def fill(template: str) -> str:
        return template.format(project=project)

    # the spec keys of the optional inputs this project reads: their paths are dependencies and arguments
    given = {key for _, key in info.optional_inputs.values() if _lookup(spec, key) is not None}
    # other projects this stage reads (a cascade's detector and classifier): their outputs are dependencies
    others = {other.key: str(_lookup(spec, other.key)) for other in info.project_inputs.values()
              if _lookup(spec, other.key) is not None}
    code = compact_paths(code_dependencies(info), CODE_ROOT)  # whole code directories as one entry each
    deps = [*code, *(fill(dvc_dependency(ref, spec.task)) for ref in info.inputs.values()),
            *(fill(dvc_dependency(ref, spec.task)) for ref, key in info.optional_inputs.values() if key in given),
            *project_dependencies(info, others)]
    for key in info.reads_paths_of:
        deps.extend(_spec_paths(spec, key))
    enabled = [when for when in info.optional if _is_set(spec, when)]
    return Stage(
        project=project,
        name=info.name,
        description=info.summary,
        cmd=" ".join((f"python -m {info.module}", *stage_arguments(info, project, given, others))),
        params=tuple(sorted(f"{project}.{key}" for key in info.params if _parents_set(spec, key))),
        deps=tuple(sorted(set(deps))),
        outs=tuple(fill(o) for o in info.outs.values()),
        persist=tuple(fill(o) for when in enabled for o in when.persist.values()),
        reports=tuple(fill(r) for r in (*info.reports.values(),
                                        *(r for when in enabled for r in when.reports.values()))),
        metrics=tuple(fill(m) for m in info.metrics.values()),
        plots=tuple(replace(p, path=fill(p.path), y=_per_class(p.y, spec))
                    for p in (*info.plots, *(p for when in enabled for p in when.plots))),
    )


def _per_class(columns: tuple[str, ...], spec: ProjectSpec) -> tuple[str, ...]:
    """A plot column written `name_{class}` stands for one column per class of the spec."""
    return tuple(c.replace("{class}", name) for c in columns for name in (spec.classes if "{class}" in c else [""]))


def _lookup(spec: ProjectSpec, key: str) -> object:
    """The spec's value at a dotted key; None when a section on the way is unset."""
    value: object = spec
    for part in key.split("."):
        if value is None:
            return None
        value = getattr(value, part)
    return value


def _parents_set(spec: ProjectSpec, key: str) -> bool:
    """Whether every section above `key` is set: DVC cannot track `a.b` while `a` is null (the stage reads it as
    unset, and adding the section changes the stage's definition, which re-runs it)."""
    parent = key.rpartition(".")[0]
    return not parent or _lookup(spec, parent) is not None


def _is_set(spec: ProjectSpec, when: WhenSet) -> bool:
    return _lookup(spec, when.key) is not None


def _spec_paths(spec: ProjectSpec, key: str) -> list[str]:
    """Repository paths named under `key`: the data sources' or pool sources' files, a section's `model_path`,
    or a plain list of paths."""
    value = _lookup(spec, key)
    if value is None:
        return []
    if hasattr(value, "model_path"):
        return [str(value.model_path)]
    items = value if isinstance(value, list | tuple) else [value]
    return [path for item in items for path in ([path for _, path in source_files(item)] if hasattr(item, "kind")
                                                else [str(item)])]


def all_sources(spec: ProjectSpec) -> list[tuple[tuple[str | int, ...], Source | PoolSource]]:
    """Every source that reads repository files, with its place in the spec: data sources and the loop's pool."""
    found: list[tuple[tuple[str | int, ...], Source | PoolSource]] = [
        (("data", "sources", i), source) for i, source in enumerate(spec.data.sources)]
    if spec.active_learning is not None:
        found += [(("active_learning", "pool", i), source) for i, source in enumerate(spec.active_learning.pool)]
    return found


def source_files(source: Source | PoolSource) -> list[tuple[str, str]]:
    """The repository paths a data or pool source reads, each with the spec field that names it."""
    if isinstance(source, SklearnDigitsSource | PhotoMosaicsSource):
        return []  # built-in data sets read no file of the repository
    if isinstance(source, PROJECT_SOURCES):
        return [("project", path) for path in source.inputs()]
    if isinstance(source, CocoSource):
        return [("annotations", source.annotations), *([("images", source.images)] if source.images else [])]
    if isinstance(source, LabelStudioSource):
        return [("path", source.path), *([("images", source.images)] if source.images else []),
                *([("queue", source.queue)] if source.queue else [])]
    return [("path", source.path), *([("manifest", source.manifest)] if isinstance(source, VideoSource)
                                     and source.manifest else [])]
