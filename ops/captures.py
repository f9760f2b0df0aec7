"""`autodl captures fetch`: bring what the model server captured (serving.capture) into the data loop's pool.

Copies every capture (image and JSON record) from the spec's capture destination, a local folder or an S3
prefix, into the pool folder of kind `captures` (`active_learning.pool`), keeping the store's layout, skipping
what is already there. Keys that would leave the target folder, or files that are neither images nor
records, are refused: the bucket is not trusted more than any other input.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from core.spec import ProjectSpec
from core.spec.loop import PoolCaptures
from serving.capture import FORMATS, LocalStore, S3Store, Store, open_store

ALLOWED_SUFFIXES = {".json", *(f".{extension}" for extension in FORMATS.values())}


@dataclass
class Fetched:
    copied: list[str] = field(default_factory=list)
    already_there: int = 0
    refused: list[str] = field(default_factory=list)


def capture_folder(spec: ProjectSpec, root: Path) -> Path:
    pools = [p for p in (spec.active_learning.pool if spec.active_learning else []) if isinstance(p, PoolCaptures)]
    if not pools:
        raise ValueError(f"{spec.name} has no active_learning.pool entry of kind captures to fetch into")
    return root / pools[0].path


def fetch(store: Store, target: Path) -> Fetched:
    done = Fetched()
    for key, _ in sorted(store.list()):
        path = PurePosixPath(key)
        if path.is_absolute() or ".." in path.parts or path.suffix.lower() not in ALLOWED_SUFFIXES \
                or any(part.startswith(".") for part in path.parts):
            done.refused.append(key)
            continue
        local = target / path
        if local.is_file():
            done.already_there += 1
            continue
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_bytes(_read(store, key))
        done.copied.append(key)
    return done


def _read(store: Store, key: str) -> bytes:
    if isinstance(store, LocalStore):
        return (store.root / key).read_bytes()
    assert isinstance(store, S3Store)
    return store.client.get_object(Bucket=store.bucket, Key=store.prefix + key)["Body"].read()


def fetch_for(spec: ProjectSpec, root: Path) -> tuple[Fetched, Path]:
    if spec.serving.capture is None:
        raise ValueError(f"{spec.name} captures nothing: serving.capture is not set")
    destination = spec.serving.capture.destination
    store = open_store(destination if destination.startswith("s3://") else str(root / destination))
    target = capture_folder(spec, root)
    return fetch(store, target), target
