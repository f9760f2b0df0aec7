"""Cross-field checks: rules that involve more than one field or the world outside the file.

Each check is a small named function yielding Problems; CHECKS lists them in
the order their messages are most useful. They run only on a spec whose types
are already valid, so they can read fields without defensive code.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from compiler.backbones import known_backbones
from compiler.plan import all_sources, source_files
from compiler.task_checks import keys_fit_the_task, synthesized_data_is_read, synthesized_source_paths
from core.spec import ProjectSpec
from core.spec.data import PROJECT_SOURCES, ImageFolderSource, SklearnDigitsSource, VideoSource, VocSource, YoloSource
from core.spec.loop import PoolCaptures, PoolImages, PoolVideo
from core.spec.training import weights_backbone


@dataclass(frozen=True)
class Problem:
    path: tuple[str | int, ...]
    message: str
    hint: str | None = None


@dataclass(frozen=True)
class CheckContext:
    spec_stem: str
    """File name of the spec without extension."""
    repo_root: Path


Check = Callable[[ProjectSpec, CheckContext], Iterator[Problem]]


def name_matches_file(spec: ProjectSpec, ctx: CheckContext) -> Iterator[Problem]:
    if spec.name != ctx.spec_stem:
        yield Problem(("name",), f"'{spec.name}' differs from the file name '{ctx.spec_stem}'",
                      f"rename the file to {spec.name}.yaml or set name: {ctx.spec_stem}")


def classes_unique(spec: ProjectSpec, ctx: CheckContext) -> Iterator[Problem]:
    first_seen: dict[str, int] = {}
    for index, name in enumerate(spec.classes):
        if name in first_seen:
            yield Problem(("classes", index), f"class '{name}' repeats classes[{first_seen[name]}]",
                          "class names must be unique")
        first_seen.setdefault(name, index)


def split_sums_to_one(spec: ProjectSpec, ctx: CheckContext) -> Iterator[Problem]:
    split = spec.data.split
    total = split.train + split.val + split.test
    if abs(total - 1.0) > 1e-6:
        yield Problem(("data", "split"), f"train + val + test must sum to 1 (got {total:g})",
                      f"for example train: {1 - split.val - split.test:g} keeps val and test as they are")


def backbones_known(spec: ProjectSpec, ctx: CheckContext) -> Iterator[Problem]:
    for path, name in ((("model", "backbone"), spec.model.backbone), (("compress", "student"), spec.compress.student)):
        if name is not None and (name, path) != ("auto", ("model", "backbone")) and name not in known_backbones():
            close = difflib.get_close_matches(name, sorted(known_backbones()), n=3, cutoff=0.7)
            hint = f"did you mean {' or '.join(repr(c) for c in close)}?" if close else "see timm.list_models()"
            yield Problem(path, f"'{name}' is not a timm model", hint)


def pretrained_matches_backbone(spec: ProjectSpec, ctx: CheckContext) -> Iterator[Problem]:
    weights = spec.model.pretrained
    if weights is not None and weights != "auto":
        expected = weights_backbone(weights)
        if spec.model.backbone not in (expected, "auto"):  # auto: the backbone the weights were made for
            yield Problem(("model", "pretrained"), f"{weights} weights fit backbone '{expected}', "
                          f"not '{spec.model.backbone}'", f"set model.backbone: {expected} or pretrained: null")


def thaw_follows_frozen_levels(spec: ProjectSpec, ctx: CheckContext) -> Iterator[Problem]:
    """`thaw_epochs` trains the frozen levels after the frozen epochs: with nothing frozen it would do nothing."""
    train = spec.train
    if isinstance(train.thaw_epochs, int) and train.thaw_epochs and train.freeze in (0, "all"):
        yield Problem(("train", "thaw_epochs"), f"thaws frozen levels, but train.freeze is {train.freeze!r}"
                      + (" (a linear probe: use warm_start to fine-tune after it)" if train.freeze == "all" else ""),
                      "set train.freeze to a number of levels (or auto), or remove thaw_epochs")


def hpo_space_well_formed(spec: ProjectSpec, ctx: CheckContext) -> Iterator[Problem]:
    hpo = spec.train.hpo
    if hpo is None:
        return
    for name, dim in hpo.space.items():
        path = ("train", "hpo", "space", name)
        has_range = dim.low is not None or dim.high is not None
        if has_range == (dim.choices is not None):
            yield Problem(path, "give either low and high, or choices",
                          "for example {low: 1.0e-4, high: 1.0e-2, log: true}")
        elif has_range and (dim.low is None or dim.high is None or dim.low >= dim.high):
            yield Problem(path, f"needs low < high (got low={dim.low}, high={dim.high})")
        elif has_range and dim.log and dim.low <= 0:
            yield Problem(path, f"a log-scaled range needs low > 0 (got {dim.low})")
        elif dim.choices is not None and not dim.choices:
            yield Problem(path, "choices must not be empty")
        if hpo.sampler == "grid" and dim.choices is None:
            yield Problem(path, "the grid sampler needs choices for every parameter", "list the values under 'choices'")
        if name in CATEGORICAL and dim.choices is None:
            yield Problem(path, f"{name} is searched over a list of choices", CATEGORICAL[name][1])
        yield from _choices_fit(name, dim.choices or [], path)


CATEGORICAL: dict[str, tuple[str, str]] = {
    "backbone": ("a timm model", "for example {choices: [resnet10t, tf_efficientnet_lite0]}"),
    "input_size_px": ("a size in pixels from 8 to 1024", "for example {choices: [128, 224]}"),
    "freeze": ("a number of levels from 0 to 8, or all", "for example {choices: [0, 2, all]}"),
    "balance": ("one of none, sampler, loss", "for example {choices: [none, sampler]}"),
}


def _choice_ok(name: str, value: object) -> bool:
    if name == "backbone":
        return isinstance(value, str) and value in known_backbones()
    if name == "input_size_px":
        return isinstance(value, int) and not isinstance(value, bool) and 8 <= value <= 1024
    if name == "freeze":
        return value == "all" or (isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 8)
    if name == "balance":
        return value in ("none", "sampler", "loss")
    return isinstance(value, int | float) and not isinstance(value, bool)


def _choices_fit(name: str, choices: list[object], path: tuple[str | int, ...]) -> Iterator[Problem]:
    for index, value in enumerate(choices):
        if not _choice_ok(name, value):
            expected = CATEGORICAL[name][0] if name in CATEGORICAL else "a number"
            hint = CATEGORICAL[name][1] if name in CATEGORICAL else "numbers only"
            if name == "backbone" and isinstance(value, str):
                close = difflib.get_close_matches(value, sorted(known_backbones()), n=3, cutoff=0.7)
                hint = f"did you mean {' or '.join(repr(c) for c in close)}?" if close else "see timm.list_models()"
            yield Problem((*path, "choices", index), f"{value!r} is not {expected}", hint)


def video_labels_defined(spec: ProjectSpec, ctx: CheckContext) -> Iterator[Problem]:
    for index, source in enumerate(spec.data.sources):
        if isinstance(source, VideoSource) and (source.label_from == "manifest") != (source.manifest is not None):
            yield Problem(("data", "sources", index, "manifest"),
                          "a manifest is required exactly when label_from is 'manifest'",
                          "set label_from: manifest together with manifest: <csv>, or neither")


def digits_source_has_classes(spec: ProjectSpec, ctx: CheckContext) -> Iterator[Problem]:
    for index, source in enumerate(spec.data.sources):
        if isinstance(source, SklearnDigitsSource) and not set(spec.classes) & {str(d) for d in range(10)}:
            yield Problem(("data", "sources", index), "sklearn_digits provides classes '0'..'9', none of which "
                          "is in classes", "add the digits you want, e.g. classes: ['0', '1']")


def source_paths_stay_in_repo(spec: ProjectSpec, ctx: CheckContext) -> Iterator[Problem]:
    """The lexical check runs in the schema; this one follows symbolic links that already exist."""
    root = ctx.repo_root.resolve()
    for where, source in all_sources(spec):
        for field, relative in source_files(source):
            target = (ctx.repo_root / relative)
            if target.exists() and not target.resolve().is_relative_to(root):
                yield Problem((*where, field), f"'{relative}' resolves outside the "
                              "repository (through a symbolic link)", "copy or DVC-import the data into the repo")


MAX_LINKS_SHOWN = 5


def source_paths_exist(spec: ProjectSpec, ctx: CheckContext) -> Iterator[Problem]:
    """A source that names nothing would make `dvc repro` fail on a missing dependency; data that DVC fetches
    later (`dvc import`, `dvc pull`) is marked by its `.dvc` file, which is enough."""
    synthesized = synthesized_source_paths(spec)
    named = [((*where, field), relative) for where, source in all_sources(spec)
             for field, relative in source_files(source) if not isinstance(source, PROJECT_SOURCES)]
    if spec.active_learning is not None and spec.active_learning.zero_shot is not None:
        named.append((("active_learning", "zero_shot", "model_path"), spec.active_learning.zero_shot.model_path))
    for where, relative in named:
        if relative in synthesized or _synthesized_by_a_project(ctx.repo_root, relative):
            continue
        if not (ctx.repo_root / relative).exists() and not _fetched_by_dvc(ctx.repo_root, relative):
            hint = ("run `autodl captures fetch` first" if where[:2] == ("active_learning", "pool") and
                    getattr(spec.active_learning.pool[where[2]], "kind", "") == "captures" else  # type: ignore[union-attr]
                    f"create it; if DVC fetches it (`dvc import`, `dvc pull`), commit its .dvc file "
                    f"(e.g. {relative.rstrip('/')}.dvc) and run `dvc pull` before `dvc repro`")
            yield Problem(where, f"'{relative}' does not exist", hint)


def sources_read_a_detection_project(spec: ProjectSpec, ctx: CheckContext) -> Iterator[Problem]:
    """A crops or project source reads another project's ingest and split: that project must exist and be a
    detector (its outputs are made by `dvc repro` before this project's ingest, so they need not exist yet)."""
    if spec.cascade is not None:
        return  # a cascade's data are its detector's: cascade_joins_its_projects checks that project
    for index, source in enumerate(spec.data.sources):
        if not isinstance(source, PROJECT_SOURCES):
            continue
        where = ("data", "sources", index, "project")
        if source.project == spec.name:
            yield Problem(where, "a project cannot read its own boxes", "name another detection project")
            continue
        task = _task_of(ctx.repo_root, source.project)
        if task is None:
            yield Problem(where, f"no spec specs/{source.project}.yaml", "name a detection project of this "
                          f"repository (a {source.kind} source reads its ingested boxes)")
        elif task != "detection":
            yield Problem(where, f"project '{source.project}' is task: {task}, not detection",
                          f"a {source.kind} source reads a detection project's boxes")


def cascade_joins_its_projects(spec: ProjectSpec, ctx: CheckContext) -> Iterator[Problem]:
    """A cascade's detector and baseline are detection projects, its classifier a classification project trained
    on crops of the detector's boxes with the cascade's padding, and the classifier and baseline name the
    cascade's classes (read from their spec files without validating them: their own errors are reported when
    they are loaded)."""
    if spec.cascade is None or spec.task != "cascade":
        return  # the section on another task is keys_fit_the_task's error
    wanted = {"detector": "detection", "classifier": "classification", "baseline": "detection"}
    specs: dict[str, dict[str, Any]] = {}
    for role, task in wanted.items():
        project = getattr(spec.cascade, role)
        if project is None:
            continue
        found = _other_spec(ctx.repo_root, project)
        if found is None:
            yield Problem(("cascade", role), f"no spec specs/{project}.yaml", f"name a {task} project of this "
                          "repository")
        elif str(found.get("task", "classification")) != task:
            yield Problem(("cascade", role), f"project '{project}' is task: {found.get('task', 'classification')}, "
                          f"not {task}", f"the cascade's {role} is a {task} project")
        else:
            specs[role] = found
    for role in ("classifier", "baseline"):
        if role in specs and sorted(map(str, specs[role].get("classes") or [])) != sorted(spec.classes):
            yield Problem(("classes",), f"the cascade's classes {list(spec.classes)} are not the classes of its "
                          f"{role} '{getattr(spec.cascade, role)}' ({specs[role].get('classes')})",
                          f"name the {role}'s classes (the fine classes every found object is given)")
    if "classifier" in specs and "detector" in specs:
        yield from _classifier_crops_the_detector(spec, specs["classifier"], specs["detector"])


def _classifier_crops_the_detector(spec: ProjectSpec, classifier: dict[str, Any], detector: dict[str, Any]
                                   ) -> Iterator[Problem]:
    """The classifier must learn from crops of the detector's boxes (or of the project the detector reads), cut
    with the padding the cascade crops detections with: otherwise it is judged on crops unlike its training's."""
    assert spec.cascade is not None
    readable = {spec.cascade.detector} | {
        str(source.get("project")) for source in (detector.get("data") or {}).get("sources") or []
        if isinstance(source, dict) and source.get("kind") == "project"}
    crops = [source for source in (classifier.get("data") or {}).get("sources") or []
             if isinstance(source, dict) and source.get("kind") == "crops" and source.get("project") in readable]
    if not crops:
        yield Problem(("cascade", "classifier"), f"'{spec.cascade.classifier}' reads no crops of the boxes of "
                      f"'{spec.cascade.detector}'", f"give it a source {{kind: crops, project: "
                      f"{spec.cascade.detector}}}: the classifier must learn from the boxes the detector learns from")
    elif any(float(source.get("padding", 0.1)) != spec.cascade.padding for source in crops):
        yield Problem(("cascade", "padding"), f"{spec.cascade.padding} is not the padding of the crops source of "
                      f"'{spec.cascade.classifier}' ({crops[0].get('padding', 0.1)})",
                      "crop detections as the classifier's training crops were cut: use the same padding")


def _other_spec(repo_root: Path, project: str) -> dict[str, Any] | None:
    """Another project's spec file as plain data, without validating it; None when the repository has none of that
    name, {} when it cannot be read (its own errors are reported when it is loaded)."""
    from ruamel.yaml import YAML

    found = [repo_root / "specs" / f"{project}{suffix}" for suffix in (".yaml", ".yml")]
    path = next((p for p in found if p.is_file()), None)
    if path is None:
        return None
    try:
        data = YAML(typ="safe", pure=True).load(path.read_text(encoding="utf-8"))
    except Exception:  # the other spec's own errors are reported when it is loaded
        return {"task": "unreadable"}
    return data if isinstance(data, dict) else {"task": "unreadable"}


def _task_of(repo_root: Path, project: str) -> str | None:
    """The `task` the project's spec names (classification when it names none); None when there is no spec."""
    data = _other_spec(repo_root, project)
    return None if data is None else str(data.get("task", "classification"))


def _synthesized_by_a_project(root: Path, relative: str) -> bool:
    """Whether the path lies in the folder a project's own `synthesize` stage writes (`data/<p>/synthesize/`, such
    as the embedded data set's unlabelled `pool/`): `dvc repro` makes it before any stage reads it."""
    parts = Path(relative).parts
    if len(parts) < 3 or parts[0] != "data" or parts[2] != "synthesize":
        return False
    data = (_other_spec(root, parts[1]) or {}).get("data")
    return isinstance(data, dict) and isinstance(data.get("synthesize"), dict)


def _fetched_by_dvc(root: Path, relative: str) -> bool:
    """Whether the path or a folder above it has a `.dvc` file: DVC restores it on `dvc pull`."""
    parts = Path(relative).parts
    return any((root / Path(*parts[:i]).with_name(parts[i - 1] + ".dvc")).is_file() for i in range(1, len(parts) + 1))


def source_links_resolve(spec: ProjectSpec, ctx: CheckContext) -> Iterator[Problem]:
    """A dangling symbolic link inside a source folder stops `dvc repro` before any stage runs (DVC cannot
    hash it), with an error that names neither the spec nor the fix: find them here first."""
    for where, source in all_sources(spec):
        folder_source = isinstance(source, ImageFolderSource | VideoSource | YoloSource | VocSource | PoolImages
                                   | PoolVideo | PoolCaptures)
        if folder_source and (ctx.repo_root / source.path).is_dir():
            dangling = _dangling_links(ctx.repo_root / source.path)
            shown = ", ".join(f"{p.relative_to(ctx.repo_root).as_posix()} -> {os.readlink(p)}"
                              for p in dangling[:MAX_LINKS_SHOWN])
            more = f" and {len(dangling) - MAX_LINKS_SHOWN} more" if len(dangling) > MAX_LINKS_SHOWN else ""
            if dangling:
                yield Problem((*where, "path"), f"'{source.path}' holds {len(dangling)} "
                              f"dangling symbolic link(s): {shown}{more}",
                              "DVC cannot hash a link to nothing: delete the links or restore what they point to")


def _dangling_links(folder: Path) -> list[Path]:
    found = []
    for parent, folders, names in os.walk(folder):
        for name in sorted(folders + names):
            path = Path(parent) / name
            if path.is_symlink() and not path.exists():
                found.append(path)
    return sorted(found)


def lists_unique(spec: ProjectSpec, ctx: CheckContext) -> Iterator[Problem]:
    lists = {("compress", "methods"): spec.compress.methods,
             ("dependability", "robustness", "corruptions"): spec.dependability.robustness.corruptions,
             ("dependability", "robustness", "severities"): spec.dependability.robustness.severities,
             ("data", "cleaning", "remove_flagged"): spec.data.cleaning.remove_flagged}
    for path, values in lists.items():
        for index, value in enumerate(values):
            if value in values[:index]:
                yield Problem((*path, index), f"{value!r} is listed twice")


def replicas_ordered(spec: ProjectSpec, ctx: CheckContext) -> Iterator[Problem]:
    serving = spec.serving
    if serving.min_replicas > serving.max_replicas:
        yield Problem(("serving", "min_replicas"), f"min_replicas ({serving.min_replicas}) exceeds "
                      f"max_replicas ({serving.max_replicas})")


CHECKS: tuple[Check, ...] = (
    name_matches_file,
    classes_unique,
    split_sums_to_one,
    backbones_known,
    pretrained_matches_backbone,
    hpo_space_well_formed,
    thaw_follows_frozen_levels,
    video_labels_defined,
    digits_source_has_classes,
    source_paths_stay_in_repo,
    source_paths_exist,
    sources_read_a_detection_project,
    cascade_joins_its_projects,
    source_links_resolve,
    lists_unique,
    replicas_ordered,
    keys_fit_the_task,
    synthesized_data_is_read,
)


def run_checks(spec: ProjectSpec, ctx: CheckContext) -> list[Problem]:
    return [problem for check in CHECKS for problem in check(spec, ctx)]
