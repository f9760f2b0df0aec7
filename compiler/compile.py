"""Compile every spec into its generated files, or check that the committed ones are current."""

from __future__ import annotations

import difflib
from pathlib import Path

from compiler.emitters import EmitContext, registered_emitters
from compiler.errors import Diagnostic, SpecError
from compiler.fsutil import read_text_or_none, write_atomically
from compiler.load import LoadedSpec, discover_specs, load_specs
from compiler.plan import plan

SPECS_DIR = "specs"


def render(loaded: list[LoadedSpec]) -> dict[str, str]:
    """All generated files for these specs: a pure function of the specs and the stage registry."""
    ordered = tuple(sorted(loaded, key=lambda item: item.spec.name))
    ctx = EmitContext(ordered, tuple(plan(item.spec, item.path) for item in ordered))
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
    return render(load_specs(paths, root))


def compile_repo(root: Path) -> list[str]:
    """Regenerate every file; nothing is written unless every spec is valid. Returns changed paths."""
    return write_atomically(render_repo(root), root)


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
