"""What `dvc.lock` recorded of the last run, read the way DVC compares it: md5 of each file, per stage.

Shared by `autodl impact` (has a stage's code changed since it ran?) and `autodl compile --check` (is a
promotion record the one the pipeline wrote?).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

LOCK_FILE = "dvc.lock"


def locked_stages(root: Path) -> dict[str, dict[str, Any]]:
    """Stage id -> its dvc.lock entry (cmd, deps, params, outs): what each stage last ran with."""
    path = root / LOCK_FILE
    lock: Any = YAML(typ="safe", pure=True).load(path.read_text(encoding="utf-8")) if path.is_file() else {}
    return {name: stage for name, stage in ((lock or {}).get("stages") or {}).items() if isinstance(stage, dict)}


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
