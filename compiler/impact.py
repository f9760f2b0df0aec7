"""Impact analysis: which stages will `dvc repro` run now, and why.

By default the baseline is the last run, as DVC sees it: each stage's `dvc.lock`
entry (the command, dependencies, param values and outputs it ran with) and
DVC's own status of its files (`compiler.dvc_status`). The stage is planned
from the spec as `autodl compile` would write it, so an edit not compiled yet
counts too (and the report says to compile). A stage runs when it never ran,
when a param key it declares has another value than it ran with, when its
command, dependencies or outputs changed, when DVC sees a dependency or an
output changed or missing, or when a stage it reads from runs.

With a git revision (`--rev`), the baseline is instead `params.yaml` and
`dvc.yaml` at that revision: what a spec edit changes, whatever ran since.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from compiler.dvc_status import DvcUnavailable, StageStatus, dvc_status
from compiler.emitters.dvc import stage_entry
from compiler.ir import Pipeline, Stage
from compiler.load import LoadedSpec
from compiler.lock import load_generated_yaml, locked_md5s, locked_params, locked_stages, path_md5
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
    never_ran: bool = False
    """No dvc.lock entry: the stage has not completed a run here."""
    changed_files: list[str] = field(default_factory=list)
    """What DVC says changed in the stage's data dependencies and outputs, as sentences."""

    @property
    def direct(self) -> bool:
        """Runs for a reason of its own, not only because a stage upstream runs (what `dvc status` lists)."""
        return bool(self.never_ran or self.new_stage or self.definition_changed or self.changed_code
                    or self.changed_params or self.changed_files)

    def reasons(self) -> list[str]:
        out = []
        if self.never_ran:
            out.append("has not run yet (no dvc.lock entry)")
        if self.new_stage:
            out.append("new stage")
        if self.definition_changed:
            out.append("stage definition changed (cmd, deps or outs)")
        out.extend(f"code changed since its last run: {path}" for path in self.changed_code)
        out.extend(f"param {c.key}: {_show(c.before)} -> {_show(c.after)}" for c in self.changed_params)
        out.extend(self.changed_files)
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


@dataclass(frozen=True)
class RunState:
    """What `dvc repro` compares against: the last run (dvc.lock) and DVC's status of the files."""

    locked: dict[str, dict[str, Any]]
    """dvc.lock: stage id -> its entry."""
    status: dict[str, StageStatus]
    """DVC's verdict per flagged stage."""
    compiled: bool
    """Whether dvc.yaml and params.yaml hold what `autodl compile` would write for this spec."""
    note: str = ""
    """Why DVC could not be asked, when it could not."""


def load_run_state(root: Path, loaded: LoadedSpec) -> RunState:
    pipeline = plan(loaded.spec, loaded.path)
    on_disk = load_baseline(root, None)
    compiled = (all(on_disk.stages.get(s.id) == stage_entry(s) for s in pipeline.stages)
                and _flatten(on_disk.params.get(loaded.spec.name, {}))
                == _flatten(loaded.spec.model_dump(mode="json")))
    try:
        status, note = dvc_status(root), ""
    except DvcUnavailable as exc:
        status, note = {}, str(exc)
    return RunState(locked_stages(root), status, compiled, note)


def run_impact(loaded: LoadedSpec, state: RunState) -> list[StageImpact]:
    """Per stage of the spec's pipeline, in pipeline order: does `dvc repro` run it now, and why."""
    pipeline = plan(loaded.spec, loaded.path)
    now = _flatten(loaded.spec.model_dump(mode="json"))
    results: dict[str, StageImpact] = {}
    for stage in pipeline.stages:
        result = StageImpact(stage.id)
        entry = state.locked.get(stage.id)
        if entry is None:
            result.never_ran = True
        else:
            result.changed_params = _param_changes(loaded.spec.name, stage, locked_params(entry), now)
            result.definition_changed = _definition_changed(stage, entry)
            result.changed_code, result.changed_files = _file_changes(stage, pipeline,
                                                                      state.status.get(stage.id, StageStatus()))
        result.upstream = [up.id for up in pipeline.upstream_of(stage) if results[up.id].reruns]
        result.reruns = result.direct or bool(result.upstream)
        results[stage.id] = result
    return list(results.values())


def _param_changes(project: str, stage: Stage, ran_with: dict[str, Any], now: dict[str, Any]) -> list[ParamChange]:
    """Declared keys whose value differs from the one dvc.lock recorded, leaf by leaf."""
    before: dict[str, Any] = {}
    for key, value in ran_with.items():
        before.update(_flatten(value, key) or {key: value})
    after = {f"{project}.{k}": v for k, v in now.items()
             if any(_overlaps(f"{project}.{k}", declared) for declared in stage.params)}
    keys = sorted(set(before) | set(after))
    return [ParamChange(k, before.get(k, MISSING), after.get(k, MISSING)) for k in keys
            if before.get(k, MISSING) != after.get(k, MISSING)]


def _definition_changed(stage: Stage, entry: dict[str, Any]) -> bool:
    """The command, the dependency paths or the output paths differ from what the stage ran with."""
    entry_paths = {kind: {d.get("path") for d in entry.get(kind) or [] if isinstance(d, dict)}
                   for kind in ("deps", "outs")}
    declared_outs = set(stage.written())
    return (entry.get("cmd") != stage.cmd or entry_paths["deps"] != set(stage.deps)
            or entry_paths["outs"] != declared_outs)


def _file_changes(stage: Stage, pipeline: Pipeline, status: StageStatus) -> tuple[list[str], list[str]]:
    """DVC's flags for the stage's files as (changed code paths, sentences about data and outputs)."""
    producers = {out: s.id for s in pipeline.stages for out in s.written()}
    code, sentences = [], []
    for path, state in sorted(status.changed_deps.items()):
        if path.split("/", 1)[0] in CODE_PACKAGES:
            if state == "modified":
                code.append(path)
            else:
                sentences.append(f"code file {path}: {state}")
        elif path in producers:
            sentences.append(f"input {path} (written by {producers[path]}) {_verb(state)} since its last run")
        else:
            sentences.append(f"data {path} {_verb(state)} since its last run")
    for path, state in sorted(status.changed_outs.items()):
        if state in ("deleted", "not in cache"):
            sentences.append(f"output {path} is missing ({state}): `dvc pull` or `dvc checkout` restores it when a "
                             "remote or the cache has it; otherwise `dvc repro` runs the stage again")
        else:
            sentences.append(f"output {path} {_verb(state)} since its last run")
    if status.command_changed:
        sentences.append("its command changed")
    if status.always_changed:
        sentences.append("marked always_changed")
    return code, sentences


def _verb(state: str) -> str:
    return {"modified": "changed", "deleted": "is missing", "new": "is new"}.get(state, state)


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
    """Code files (or code directories) whose bytes differ from the md5 dvc.lock recorded when the stage last ran."""
    if root is None or not locked:
        return []
    code = [d for d in deps if d.split("/", 1)[0] in CODE_PACKAGES and d in locked]
    return [d for d in code if path_md5(root / d) != locked[d]]


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
    data = load_generated_yaml(text)
    return data if isinstance(data, dict) else {}


def _git_show(root: Path, rev: str, path: str) -> str | None:
    try:
        done = subprocess.run(["git", "show", f"{rev}:{path}"], cwd=root, capture_output=True, text=True,
                              check=False)
    except FileNotFoundError:
        return None
    return done.stdout if done.returncode == 0 else None
