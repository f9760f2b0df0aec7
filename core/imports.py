"""Which project files a module runs: its static import closure, by an AST walk (milliseconds, no import).

The compiler derives every stage's code dependencies from this, so an edit to any module a stage imports,
however indirectly, re-runs that stage, and no hand-written list can fall behind the code.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from functools import cache
from pathlib import Path

CODE_ROOT = Path(__file__).resolve().parents[1]
"""Where the pipeline's code lives: the repository root this package sits in."""
CODE_PACKAGES = ("cli", "compiler", "core", "ops", "runtime", "serving", "stages", "vision")
"""The project's own top-level packages: imports of anything else are libraries, not code dependencies."""


def import_closure(module: str, root: Path, packages: Iterable[str]) -> tuple[str, ...]:
    """Relative POSIX paths of every project file `module` (dotted name) runs when run as a program: itself, the
    `__init__.py` of each package on the way, and everything they import from `packages`, transitively;
    imports inside functions count (they run when the function does). Only `module`'s own
    `if __name__ == "__main__":` block counts: another module's runs only when that module is the program (a
    stage module imports its contract there, so a stage that reuses another's code does not depend on the
    other's contract)."""
    packages, root = frozenset(packages), root.resolve()
    seen: set[Path] = set()
    program = root.joinpath(*module.split(".")).with_suffix(".py")
    pending = list(_files_of(module, root, packages))
    while pending:
        path = pending.pop()
        if path in seen:
            continue
        seen.add(path)
        for name in _imported_names(path, _module_name(path, root), as_program=path == program):
            pending.extend(p for p in _files_of(name, root, packages) if p not in seen)
    return tuple(sorted(p.relative_to(root).as_posix() for p in seen))


@cache
def _files_of(name: str, root: Path, packages: frozenset[str]) -> tuple[Path, ...]:
    """The file of module `name` and the `__init__.py` of each package above it; [] outside the project."""
    parts = name.split(".")
    if parts[0] not in packages:
        return ()
    files = [root.joinpath(*parts[:i], "__init__.py") for i in range(1, len(parts) + 1)]
    files.append(root.joinpath(*parts).with_suffix(".py"))
    return tuple(f for f in files if f.is_file())


@cache
def _imported_names(path: Path, module: str, as_program: bool) -> tuple[str, ...]:
    """Dotted names `path` imports: `import a.b`, `from a import b` (a.b if b is a module, else a); its
    `if __name__ == "__main__":` blocks only `as_program`."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    if not as_program:
        tree.body = [node for node in tree.body if not _is_main_block(node)]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node.module, node.level, package)
            names.append(base)
            names += [f"{base}.{alias.name}" for alias in node.names if alias.name != "*"]
    return tuple(names)


def _is_main_block(node: ast.stmt) -> bool:
    """`if __name__ == "__main__":` at the top of a module."""
    return (isinstance(node, ast.If) and isinstance(node.test, ast.Compare) and isinstance(node.test.left, ast.Name)
            and node.test.left.id == "__name__" and len(node.test.comparators) == 1
            and isinstance(node.test.comparators[0], ast.Constant) and node.test.comparators[0].value == "__main__")


def _absolute(module: str | None, level: int, package: str) -> str:
    if level == 0:
        return module or ""
    parent = package.split(".")[: len(package.split(".")) - (level - 1)] if package else []
    return ".".join([*parent, *([module] if module else [])])


def _module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


NOT_HASHED = "__pycache__"
"""Python's byte-code folders: `.dvcignore` hides them from DVC, so they never count as a directory's files."""


def hashed_files(directory: Path) -> list[Path]:
    """Every file DVC hashes for `directory` (byte-code folders aside), in DVC's order: by relative POSIX path."""
    files = (p for p in directory.rglob("*") if p.is_file() and NOT_HASHED not in p.relative_to(directory).parts)
    return sorted(files, key=lambda p: p.relative_to(directory).as_posix())


def compact_paths(paths: Iterable[str], root: Path) -> tuple[str, ...]:
    """`paths` (files, relative POSIX) as DVC dependencies: the files of each directory that they hold entirely
    written as that directory (the highest such, never the root), in the order of their first file, and a
    package's `__init__.py` that runs no code (`runs_no_code`) left out unless such a directory holds it.

    Why: DVC rereads and rewrites the whole `dvc.lock` after every stage it runs (treeverse/dvc#10629), so its cost
    per stage grows with every file every stage lists; a directory is one entry, and a docstring is none. Exact: a
    directory is named only when every file in it is among `paths`, and a file left out cannot change what a stage
    computes, so an edit re-runs the same stages as before (a new file in such a directory also re-runs them, which
    is how DVC treats directories; code added to an `__init__.py` lists it at the next compile, as a new import
    lists a new module)."""
    wanted = list(dict.fromkeys(paths))
    members = set(wanted)
    out: dict[str, None] = {}
    for path in wanted:
        parts = path.split("/")
        covering = next((d for d in ("/".join(parts[:i]) for i in range(1, len(parts)))
                         if _files_under(root, d) and _files_under(root, d) <= members), None)
        if covering is not None:
            out.setdefault(covering)
        elif not runs_no_code(root / path):
            out.setdefault(path)
    return tuple(out)


@cache
def runs_no_code(path: Path) -> bool:
    """A package's `__init__.py` holding only its docstring and `from __future__` imports: importing it runs
    nothing, so no stage's result depends on its text."""
    if path.name != "__init__.py" or not path.is_file():
        return False
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    return all(_is_docstring(node) or (isinstance(node, ast.ImportFrom) and node.module == "__future__")
               for node in tree.body)


def _is_docstring(node: ast.stmt) -> bool:
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)


@cache
def _files_under(root: Path, directory: str) -> frozenset[str]:
    """Every file DVC hashes below `directory` (relative POSIX paths); none when it is empty or not a directory."""
    base = root / directory
    return frozenset(p.relative_to(root).as_posix() for p in hashed_files(base)) if base.is_dir() else frozenset()
