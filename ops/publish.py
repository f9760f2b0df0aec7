"""`autodl publish`: put each promoted bundle at the content address its InferenceService names.

KServe's storage initializer downloads an InferenceService's `storageUri` as a plain folder of files.
`dvc push` stores the same bytes in DVC's own cache layout (objects named by their md5), which KServe
cannot read, so after the push the merge job copies `models/<p>/release` to the `storage_uri` recorded in
`k8s/<p>/promoted.yaml`. Any fsspec URL works (s3:// through s3fs, which DVC's S3 remote already
installs; a local path for a shared filesystem). Credentials and an S3-compatible endpoint come from the
usual environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL), never from files in git.

A content address is immutable: the local bundle must hash to the merged record before anything is sent,
a file already there with the same bytes is skipped (a rerun or a resumed upload costs only reads), a
different one or a stray file is an error and is never overwritten, and the uploaded copy is read back
and hashed before the command reports success.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from compiler.compile import read_promoted
from core.content import PREFIX, digest_of, tree_digest, tree_files
from core.registry import STAGES_BY_NAME


class PublishError(Exception):
    """The bundle cannot be published as it stands; the message says what to do."""


@dataclass
class Publication:
    """What one `publish` did for one project."""

    project: str
    uri: str
    digest: str
    uploaded: list[str] = field(default_factory=list)
    already_there: list[str] = field(default_factory=list)


def publish(root: Path, project: str, dry_run: bool = False) -> Publication:
    """Copy `models/<project>/release` to its content address; raise PublishError on any mismatch."""
    promoted = read_promoted(root, project)
    if promoted is None:
        raise PublishError(f"{project}: nothing promoted yet (k8s/{project}/promoted.yaml is missing)")
    hexdigest = promoted.digest.removeprefix("sha256:")
    if not promoted.storage_uri.rstrip("/").endswith(f"/{PREFIX}{hexdigest}"):
        raise PublishError(f"{project}: storage_uri {promoted.storage_uri} is not the content address of "
                           f"{promoted.digest}; re-run the promote stage (dvc repro)")
    bundle = root / STAGES_BY_NAME["promote"].outs["release"].format(project=project)
    if not bundle.is_dir():
        raise PublishError(f"{project}: {bundle} is missing: run `dvc pull` (or `dvc repro`) first")
    local = tree_digest(bundle)
    if local != hexdigest:
        raise PublishError(f"{project}: {bundle} is sha256:{local[:12]} but k8s/{project}/promoted.yaml names "
                           f"sha256:{hexdigest[:12]}: run `dvc checkout` (or `dvc repro`) so the bundle matches "
                           "the merged dvc.lock")
    uri = promoted.storage_uri.rstrip("/")
    try:
        return _upload(project, tree_files(bundle), uri, hexdigest, dry_run)
    except PublishError:
        raise
    except Exception as exc:  # storage libraries raise their own types (botocore's NoCredentialsError, ...)
        raise PublishError(f"{project}: cannot publish to {uri}: {type(exc).__name__}: {exc}") from exc


def _upload(project: str, files: dict[str, Path], uri: str, hexdigest: str, dry_run: bool) -> Publication:
    import fsspec  # installed with DVC (pipeline extra); the compiler alone does not need it

    fs, base = fsspec.core.url_to_fs(uri, skip_instance_cache=True)  # fresh credentials and endpoint each run
    remote = {path[len(base) + 1:]: path for path in fs.find(base)} if fs.exists(base) else {}
    strays = sorted(set(remote) - set(files))
    if strays:
        raise PublishError(f"{project}: {uri} holds files the bundle does not ({', '.join(strays)}); a content "
                           "address is never overwritten: remove them by hand if they are debris")
    result = Publication(project, uri, f"sha256:{hexdigest}")
    for name, local in files.items():
        if name in remote:
            if _sha256(fs.cat_file(remote[name])) != _sha256(local.read_bytes()):
                raise PublishError(f"{project}: {uri}/{name} exists with different bytes; a content address is "
                                   "never overwritten: remove it by hand if it is a broken upload")
            result.already_there.append(name)
        else:
            if not dry_run:
                target = f"{base}/{name}"
                fs.makedirs(fs._parent(target), exist_ok=True)  # a local target needs its folders; S3 ignores it
                fs.put_file(str(local), target)
            result.uploaded.append(name)
    if not dry_run:
        fs.invalidate_cache(base)
        uploaded = digest_of((path[len(base) + 1:], fs.cat_file(path)) for path in fs.find(base))
        if uploaded != hexdigest:
            raise PublishError(f"{project}: the copy at {uri} reads back as sha256:{uploaded[:12]}, not "
                               f"sha256:{hexdigest[:12]}")
    return result


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
