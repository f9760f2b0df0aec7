"""A stage's code dependencies name a whole directory only when the stage runs every file in it, and the
directory's hash is the one DVC records, so `autodl impact` and `dvc repro` agree on what an edit re-runs."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from ruamel.yaml import YAML

from compiler.lock import directory_md5
from core.imports import CODE_PACKAGES, compact_paths, import_closure, runs_no_code
from core.registry import PIPELINES, code_dependencies

REPO_ROOT = Path(__file__).resolve().parents[2]


def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_a_directory_replaces_its_files_only_when_all_of_them_are_listed(tmp_path: Path) -> None:
    root = _tree(tmp_path, {"pkg/__init__.py": "", "pkg/a.py": "A", "pkg/sub/__init__.py": "", "pkg/sub/b.py": "B",
                            "pkg/sub/__pycache__/b.cpython-311.pyc": "byte code", "other/c.py": "C",
                            "other/d.py": "D"})
    listed = ["pkg/__init__.py", "pkg/a.py", "pkg/sub/__init__.py", "pkg/sub/b.py", "other/c.py", "data.csv"]
    assert compact_paths(listed, root) == ("pkg", "other/c.py", "data.csv")
    # one file short of the package: only the subpackage it holds whole is folded
    assert compact_paths(listed[1:], root) == ("pkg/a.py", "pkg/sub", "other/c.py", "data.csv")


def test_a_package_docstring_is_no_dependency_but_package_code_is(tmp_path: Path) -> None:
    root = _tree(tmp_path, {"pkg/__init__.py": '"""What the package is for."""\n\nfrom __future__ import annotations\n',
                            "pkg/a.py": "A", "pkg/b.py": "B",
                            "lib/__init__.py": '"""Docs."""\nimport os\nos.environ.setdefault("X", "1")\n',
                            "lib/c.py": "C", "lib/d.py": "D", "mod/__init__.py": "", "mod/e.py": "E"})
    listed = ["pkg/__init__.py", "pkg/a.py", "lib/__init__.py", "lib/c.py", "mod/__init__.py", "mod/e.py"]
    # pkg/b.py is not run: pkg stays files, its docstring-only __init__ drops out; lib's __init__ runs code
    assert compact_paths(listed, root) == ("pkg/a.py", "lib/__init__.py", "lib/c.py", "mod")
    assert [runs_no_code(root / f) for f in ("pkg/__init__.py", "mod/__init__.py", "lib/__init__.py", "pkg/a.py")] \
        == [True, True, False, False]


def test_every_file_a_stage_runs_is_under_one_of_its_dependencies_and_nothing_else_is() -> None:
    for stages in PIPELINES.values():
        for stage in stages:
            listed = code_dependencies(stage)  # files, and a few data directories
            compact = compact_paths(listed, REPO_ROOT)
            runs = {f for f in _files(listed) if not runs_no_code(REPO_ROOT / f)}
            assert runs <= _files(compact) <= _files(listed), (stage.name, sorted(_files(compact) ^ runs))
            assert len(compact) <= len(listed)


def _files(deps: tuple[str, ...]) -> set[str]:
    """What DVC hashes for these dependencies: a file, or every file below a directory (byte code aside)."""
    out: set[str] = set()
    for dep in deps:
        path = REPO_ROOT / dep
        out |= ({p.relative_to(REPO_ROOT).as_posix() for p in path.rglob("*")
                 if p.is_file() and "__pycache__" not in p.parts} if path.is_dir() else {dep})
    return out


def test_the_directory_hash_is_the_one_dvc_records(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(REPO_ROOT / "core" / "spec", repo / "spec", ignore=shutil.ignore_patterns("__pycache__"))
    (repo / "spec" / "__pycache__").mkdir()
    (repo / "spec" / "__pycache__" / "x.pyc").write_bytes(b"byte code DVC must not see")
    (repo / ".dvcignore").write_text("__pycache__/\n")
    subprocess.run([sys.executable, "-m", "dvc", "init", "--no-scm", "-q"], cwd=repo, check=True)
    subprocess.run([sys.executable, "-m", "dvc", "add", "-q", "spec"], cwd=repo, check=True)
    recorded = YAML(typ="safe").load((repo / "spec.dvc").read_text())["outs"][0]["md5"]
    assert directory_md5(repo / "spec") == recorded
    (repo / "spec" / "training.py").write_text("# edited\n")
    assert directory_md5(repo / "spec") != recorded


def test_the_repository_s_dvcignore_hides_byte_code_from_dvc() -> None:
    lines = (REPO_ROOT / ".dvcignore").read_text().splitlines()
    assert "__pycache__/" in lines
    # and the compiled pipeline does fold directories: the spec package is one entry in every stage
    stages = YAML(typ="safe").load((REPO_ROOT / "dvc.yaml").read_text())["stages"]
    assert all("core/spec" in stage["deps"] for stage in stages.values()), json.dumps(sorted(stages))
    assert import_closure("stages.gate", REPO_ROOT, CODE_PACKAGES)
