"""Impact analysis: which stages will `dvc repro` re-run after this spec edit, and why.

The baseline is what the repository last recorded: `params.yaml` and `dvc.yaml`
at a git revision (HEAD by default), or the working-tree files outside git, and
the md5 of every code file each stage ran with in `dvc.lock` (as DVC compares).
A stage re-runs when a param key it declares changed, when its definition
(command, deps, outs) changed, when a module it imports changed since its last
run, or when a stage it reads from re-runs.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from compiler.emitters.dvc import stage_entry
from compiler.ir import Pipeline
from compiler.load import LoadedSpec
from compiler.lock import file_md5, locked_md5s
from compiler.plan import plan
from core.registry import CODE_PACKAGES

MISSING = object()


@dataclass(frozen=True)
class ParamChange:
    key: str
    before: Any
    after: Any


@dataclass
class StageImpact:
    stage: str
    reruns: bool = False
    changed_params: list[ParamChange] = field(default_factory=list)
    definition_changed: bool = False
    new_stage: bool = False
    changed_code: list[str] = field(default_factory=list)
    upstream: list[str] = field(default_factory=list)

    def reasons(self) -> list[str]:
        out = []
        if self.new_stage:
            out.append("new stage")
        if self.definition_changed:
            out.append("stage definition changed (cmd, deps or outs)")
        out.extend(f"code changed since its last run: {path}" for path in self.changed_code)
        out.extend(f"param {c.key}: {_show(c.before)} -> {_show(c.after)}" for c in self.changed_params)
        out.extend(f"reads outputs of {u}, which re-runs" for u in self.upstream)
        return out


@dataclass(frozen=True)
class Baseline:
    params: dict[str, Any]
    stages: dict[str, Any]
    source: str
    """Where the baseline came from, for the report ('git HEAD' or 'working tree')."""
    root: Path | None = None
    """The checkout whose dvc.lock records what each stage last ran with."""
    locked: dict[str, dict[str, str]] = field(default_factory=dict)
    """dvc.lock: stage id -> dependency path -> md5."""


def load_baseline(root: Path, rev: str | None) -> Baseline:
    """params.yaml + dvc.yaml at `rev`, or from the working tree when `rev` is None or not in git."""
    locked = locked_md5s(root, "deps")
    if rev is not None:
        params_text, dvc_text = _git_show(root, rev, "params.yaml"), _git_show(root, rev, "dvc.yaml")
        if params_text is not None:
            return Baseline(_parse(params_text), _parse(dvc_text).get("stages", {}), f"git {rev}", root, locked)
    params_path, dvc_path = root / "params.yaml", root / "dvc.yaml"
    params = _parse(params_path.read_text(encoding="utf-8")) if params_path.exists() else {}
    stages = _parse(dvc_path.read_text(encoding="utf-8")).get("stages", {}) if dvc_path.exists() else {}
    return Baseline(params, stages, "working tree", root, locked)


def impact(loaded: LoadedSpec, baseline: Baseline) -> list[StageImpact]:
    """Per stage of the spec's pipeline, in pipeline order: does it re-run and why."""
    pipeline = plan(loaded.spec, loaded.path)
    before = _flatten(baseline.params.get(loaded.spec.name, {}))
    after = _flatten(loaded.spec.model_dump(mode="json"))
    changes = [ParamChange(f"{loaded.spec.name}.{k}", before.get(k, MISSING), after.get(k, MISSING))
               for k in sorted(set(before) | set(after)) if before.get(k, MISSING) != after.get(k, MISSING)]
    return _propagate(pipeline, changes, baseline)


def _propagate(pipeline: Pipeline, changes: list[ParamChange], baseline: Baseline) -> list[StageImpact]:
    results: dict[str, StageImpact] = {}
    for stage in pipeline.stages:  # topological order, so upstream verdicts are known
        result = StageImpact(stage.id)
        result.changed_params = [c for c in changes if any(_overlaps(c.key, p) for p in stage.params)]
        result.new_stage = stage.id not in baseline.stages
        result.definition_changed = not result.new_stage and stage_entry(stage) != baseline.stages[stage.id]
        result.changed_code = _changed_code(stage.deps, baseline.locked.get(stage.id, {}), baseline.root)
        result.upstream = [up.id for up in pipeline.upstream_of(stage) if results[up.id].reruns]
        result.reruns = bool(result.changed_params or result.new_stage or result.definition_changed
                             or result.changed_code or result.upstream)
        results[stage.id] = result
    return list(results.values())


def _changed_code(deps: tuple[str, ...], locked: dict[str, str], root: Path | None) -> list[str]:
    """Code files whose bytes differ from the md5 dvc.lock recorded when the stage last ran."""
    if root is None or not locked:
        return []
    code = [d for d in deps if d.split("/", 1)[0] in CODE_PACKAGES and d in locked]
    return [d for d in code if file_md5(root / d) != locked[d]]


def _overlaps(changed: str, declared: str) -> bool:
    """A declared key covers its whole subtree; a changed parent covers every declared child."""
    return changed == declared or changed.startswith(declared + ".") or declared.startswith(changed + ".")


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, dict) and tree:
        out: dict[str, Any] = {}
        for key, value in tree.items():
            out.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: tree} if prefix else {}


def _show(value: Any) -> str:
    return "(absent)" if value is MISSING else repr(value)


def _parse(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    data = YAML(typ="safe", pure=True).load(text)
    return data if isinstance(data, dict) else {}


def _git_show(root: Path, rev: str, path: str) -> str | None:
    try:
        done = subprocess.run(["git", "show", f"{rev}:{path}"], cwd=root, capture_output=True, text=True,
                              check=False)
    except FileNotFoundError:
        return None
    return done.stdout if done.returncode == 0 else None
