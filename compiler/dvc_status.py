"""DVC's own verdict on each stage (`dvc status`), read through DVC's Python API.

`autodl impact` explains this verdict rather than re-hashing files itself, so the two cannot disagree on
what changed: directory hashes, the hash cache in `.dvc/tmp` and what counts as a missing output are DVC's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class DvcUnavailable(Exception):
    """DVC cannot say what changed here (not installed, not a DVC repository, an unreadable dvc.yaml)."""


@dataclass(frozen=True)
class StageStatus:
    changed_deps: dict[str, str] = field(default_factory=dict)
    """Dependency path -> 'modified', 'deleted', 'new', ... (params files excluded)."""
    changed_params: dict[str, str] = field(default_factory=dict)
    """Param key -> 'modified', 'new' or 'deleted'."""
    changed_outs: dict[str, str] = field(default_factory=dict)
    """Output path -> 'modified', 'deleted', 'not in cache', ..."""
    command_changed: bool = False
    always_changed: bool = False


def parse_status(raw: dict[str, Any]) -> dict[str, StageStatus]:
    """`dvc status --json` (stage -> list of changes) as one StageStatus per stage DVC flags."""
    parsed: dict[str, StageStatus] = {}
    for stage, changes in raw.items():
        deps, params, outs, command, always = {}, {}, {}, False, False
        for change in changes if isinstance(changes, list) else []:
            if change == "changed command":
                command = True
            elif change == "always changed":
                always = True
            elif isinstance(change, dict):
                for path, state in (change.get("changed deps") or {}).items():
                    if isinstance(state, dict):  # a params file: key -> state
                        params.update({str(k): str(v) for k, v in state.items()})
                    else:
                        deps[str(path)] = str(state)
                outs.update({str(k): str(v) for k, v in (change.get("changed outs") or {}).items()})
        parsed[str(stage)] = StageStatus(deps, params, outs, command, always)
    return parsed


def dvc_status(root: Path) -> dict[str, StageStatus]:
    """What `dvc status` says of every stage in the repository at `root` (stages it does not list are current)."""
    try:
        from dvc.exceptions import DvcException, NotDvcRepoError
        from dvc.repo import Repo
    except ImportError:
        raise DvcUnavailable("DVC is not installed here: `make install` installs it") from None
    try:
        with Repo(str(root)) as repo:
            return parse_status(repo.status())
    except NotDvcRepoError:
        raise DvcUnavailable(f"{root} is not a DVC repository: run `dvc init`") from None
    except DvcException as exc:
        raise DvcUnavailable(f"dvc status failed: {exc}") from None
