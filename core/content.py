"""Content addresses of model bundles.

One definition shared by the promote stage (which names a bundle by it) and `autodl publish` (which checks
the local bundle against the merged record and the uploaded copy against both), so the three can never
disagree about what "the same model" means.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from pathlib import Path

PREFIX = "sha256-"
"""How a content address appears in a storage path: `<storage_uri>/<project>/sha256-<hex>`."""


def digest_of(files: Iterable[tuple[str, bytes]]) -> str:
    """sha256 over each file's relative POSIX path and the sha256 of its bytes, in path order."""
    return digest_of_hashes({name: hashlib.sha256(data).hexdigest() for name, data in files})


def digest_of_hashes(hashes: Mapping[str, str]) -> str:
    """The same digest from each file's sha256 hex alone: what a verdict that recorded them judged."""
    digest = hashlib.sha256()
    for name, sha in sorted(hashes.items()):
        digest.update(name.encode() + b"\0")
        digest.update(bytes.fromhex(sha))
    return digest.hexdigest()


def tree_files(folder: Path) -> dict[str, Path]:
    """Every file under `folder`, keyed by its relative POSIX path."""
    return {p.relative_to(folder).as_posix(): p for p in sorted(folder.rglob("*")) if p.is_file()}


def tree_digest(folder: Path) -> str:
    """The content address of a bundle folder."""
    return digest_of((name, path.read_bytes()) for name, path in tree_files(folder).items())
