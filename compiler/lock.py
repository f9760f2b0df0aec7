"""What `dvc.lock` recorded of the last run, read the way DVC compares it: md5 of each file, per stage.

Shared by `autodl impact` (has a stage's code changed since it ran?) and `autodl compile --check` (is a
promotion record the one the pipeline wrote?).
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from core.imports import hashed_files

LOCK_FILE = "dvc.lock"


def load_generated_yaml(text: str) -> Any:
    """A file a tool wrote (dvc.lock, dvc.yaml, params.yaml): plain data, read with libyaml's C parser, 20x faster
    than the pure-Python one on a lock file of a few thousand lines. Specs, which people write and whose errors
    must point at a line, go through compiler.yaml_source instead."""
    return YAML(typ="safe", pure=False).load(text)


def locked_stages(root: Path) -> dict[str, dict[str, Any]]:
    """Stage id -> its dvc.lock entry (cmd, deps, params, outs): what each stage last ran with."""
    path = root / LOCK_FILE
    if not path.is_file():
        return {}
    status = path.stat()
    return dict(_locked_stages(str(path), status.st_mtime_ns, status.st_size))


@lru_cache(maxsize=4)
def _locked_stages(path: str, mtime_ns: int, size: int) -> tuple[tuple[str, dict[str, Any]], ...]:
    """Parsed once per version of the file (the key carries its mtime and size)."""
    lock: Any = load_generated_yaml(Path(path).read_text(encoding="utf-8"))
    return tuple((name, stage) for name, stage in ((lock or {}).get("stages") or {}).items()
                 if isinstance(stage, dict))


def locked_md5s(root: Path, kind: str) -> dict[str, dict[str, str]]:
    """Stage id -> path -> md5, for the stage's `deps` or `outs` (`kind`) as dvc.lock records them."""
    return {name: {entry["path"]: entry.get("md5", "") for entry in stage.get(kind) or []
                   if isinstance(entry, dict) and "path" in entry}
            for name, stage in locked_stages(root).items()}


def locked_params(entry: dict[str, Any]) -> dict[str, Any]:
    """The param values a stage last ran with (key -> value, as params.yaml held them), from its lock entry."""
    values: dict[str, Any] = {}
    for per_file in (entry.get("params") or {}).values():
        if isinstance(per_file, dict):
            values.update(per_file)
    return values


def file_md5(path: Path) -> str:
    """md5 of a file's bytes, as DVC hashes it (not for security); "missing" when there is no file."""
    return hashlib.md5(path.read_bytes()).hexdigest() if path.is_file() else "missing"


def path_md5(path: Path) -> str:
    """The md5 dvc.lock records for a dependency: a file's, or a directory's `.dir` hash (below)."""
    return directory_md5(path) if path.is_dir() else file_md5(path)


def directory_md5(path: Path) -> str:
    """A directory's hash as DVC 3 records it: md5 of the JSON list of its files' {md5, relpath}, sorted by
    relpath, with `.dir` appended (dvc_data's Tree.as_bytes); byte-code folders aside, as .dvcignore has it.
    Computed here so that `autodl impact` needs no DVC repository object to compare a code directory."""
    entries = [{"md5": file_md5(p), "relpath": p.relative_to(path).as_posix()} for p in hashed_files(path)]
    listing = json.dumps(entries, sort_keys=True).encode("utf-8")
    return hashlib.md5(listing).hexdigest() + ".dir"
