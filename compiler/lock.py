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


def locked_md5s(root: Path, kind: str) -> dict[str, dict[str, str]]:
    """Stage id -> path -> md5, for the stage's `deps` or `outs` (`kind`) as dvc.lock records them."""
    path = root / LOCK_FILE
    lock: Any = YAML(typ="safe", pure=True).load(path.read_text(encoding="utf-8")) if path.is_file() else {}
    return {name: {entry["path"]: entry.get("md5", "") for entry in stage.get(kind) or []
                   if isinstance(entry, dict) and "path" in entry}
            for name, stage in ((lock or {}).get("stages") or {}).items() if isinstance(stage, dict)}


def file_md5(path: Path) -> str:
    """md5 of a file's bytes, as DVC hashes it (not for security); "missing" when there is no file."""
    return hashlib.md5(path.read_bytes()).hexdigest() if path.is_file() else "missing"
