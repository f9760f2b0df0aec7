"""Compile every spec into its generated files, or check that the committed ones are current."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from pathlib import Path

from ruamel.yaml import YAML

from compiler.emitters import EmitContext, registered_emitters
from compiler.errors import Diagnostic, SpecError
from compiler.ir import PromotedModel
from compiler.load import LoadedSpec, discover_specs, load_specs
from compiler.plan import plan
from core.fsutil import read_text_or_none, write_atomically

SPECS_DIR = "specs"
PROMOTED_FILE = "promoted.yaml"


def render(loaded: list[LoadedSpec], promoted: Mapping[str, PromotedModel] | None = None) -> dict[str, str]:
    """All generated files for these specs: a pure function of the specs, the stage registry and the models
    promoted so far."""
    ordered = tuple(sorted(loaded, key=lambda item: item.spec.name))
    ctx = EmitContext(ordered, tuple(plan(item.spec, item.path) for item in ordered), dict(promoted or {}))
    files: dict[str, str] = {}
    for emitter in registered_emitters():
        files.update(emitter.emit(ctx))
    return files


def render_repo(root: Path) -> dict[str, str]:
    """Load every spec under `root/specs` and render; SpecError if any spec is wrong or none exist."""
    paths = discover_specs(root / SPECS_DIR) if (root / SPECS_DIR).is_dir() else []
    if not paths:
        raise SpecError([Diagnostic(SPECS_DIR, 1, 1, "", "no spec files (*.yaml) found",
                                    "add one, e.g. specs/digits.yaml; see README 'Adding a project'")])
    loaded = load_specs(paths, root)
    return render(loaded, {item.spec.name: model for item in loaded
                           if (model := read_promoted(root, item.spec.name)) is not None})


def read_promoted(root: Path, project: str) -> PromotedModel | None:
    """The promote stage's record for `project`, if a model has been promoted."""
    path = root / "k8s" / project / PROMOTED_FILE
    if not path.is_file():
        return None
    data = YAML(typ="safe", pure=True).load(path.read_text(encoding="utf-8")) or {}
    missing = {"storage_uri", "digest"} - set(data)
    if missing:
        raise SpecError([Diagnostic(path.relative_to(root).as_posix(), 1, 1, "", f"missing {sorted(missing)}",
                                    "re-run the promote stage (dvc repro) to rewrite it")])
    return PromotedModel(str(data["storage_uri"]), str(data["digest"]))


def compile_repo(root: Path, only: tuple[str, ...] = ()) -> list[str]:
    """Regenerate every file (or those under the `only` path prefixes); nothing is written unless every spec
    is valid. Returns changed paths."""
    files = render_repo(root)
    return write_atomically({p: t for p, t in files.items() if not only or p.startswith(only)}, root)


def drift(root: Path) -> dict[str, str]:
    """Unified diffs (committed -> expected) of every generated file that is out of date."""
    diffs = {}
    for path, expected in render_repo(root).items():
        actual = read_text_or_none(root / path)
        if actual != expected:
            diffs[path] = "".join(difflib.unified_diff(
                (actual or "").splitlines(keepends=True), expected.splitlines(keepends=True),
                fromfile=f"{path} (on disk)" if actual is not None else "/dev/null",
                tofile=f"{path} (from specs)"))
    return diffs
