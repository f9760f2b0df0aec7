"""Front door of the compiler: spec files in, validated ProjectSpecs out (or every error at once)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from compiler.checks import CheckContext, run_checks
from compiler.errors import Diagnostic, SpecError
from compiler.validate import validate_spec
from compiler.yaml_source import load_yaml
from core.spec import ProjectSpec

SPEC_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class LoadedSpec:
    path: str
    """Repository-relative path of the spec file, as shown in headers and diagnostics."""
    spec: ProjectSpec


def load_spec(path: Path, repo_root: Path) -> LoadedSpec:
    """Load and check one spec; raise SpecError listing every problem in the file."""
    shown = _display_path(path, repo_root)
    data, source_map = load_yaml(path, shown)
    spec = validate_spec(data, source_map)
    problems = run_checks(spec, CheckContext(spec_stem=path.stem, repo_root=repo_root))
    if problems:
        raise SpecError([source_map.diagnostic(p.path, p.message, p.hint) for p in problems])
    return LoadedSpec(shown, spec)


def discover_specs(specs_dir: Path) -> list[Path]:
    return sorted(p for p in specs_dir.iterdir() if p.suffix in SPEC_SUFFIXES and p.is_file())


def load_specs(paths: list[Path], repo_root: Path) -> list[LoadedSpec]:
    """Load every spec; collect the errors of all files before failing, so one run shows them all."""
    loaded, diagnostics = [], []
    for path in paths:
        try:
            loaded.append(load_spec(path, repo_root))
        except SpecError as exc:
            diagnostics.extend(exc.diagnostics)
    diagnostics.extend(_duplicate_names(loaded))
    if diagnostics:
        raise SpecError(diagnostics)
    return loaded


def _duplicate_names(loaded: list[LoadedSpec]) -> list[Diagnostic]:
    """Two files may still claim one name (digits.yaml and digits.yml)."""
    seen: dict[str, str] = {}
    out = []
    for item in loaded:
        if item.spec.name in seen:
            out.append(Diagnostic(item.path, 1, 1, "name", f"project '{item.spec.name}' is already defined in "
                                  f"{seen[item.spec.name]}", "keep one spec file per project"))
        seen.setdefault(item.spec.name, item.path)
    return out


def _display_path(path: Path, repo_root: Path) -> str:
    try:
        return path.resolve().relative_to(repo_root.resolve()).as_posix()
    except ValueError:
        return str(path)
