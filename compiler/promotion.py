"""Is each promotion record the one the pipeline wrote for a model the gate passed?

`k8s/<p>/promoted.yaml` decides what serves after a merge, and `autodl compile` renders the
InferenceService from it, so a hand edit would serve anything. `autodl compile --check` (run on every pull
request) binds the record three ways: to `dvc.lock` (the md5 DVC recorded when the promote stage wrote the
record, and when the gate wrote its verdict), to the verdict (passed, and the bundle digest of the files it
judged), and to the spec (the content address under `serving.storage_uri`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from compiler.compile import PROMOTED_FILE, read_promoted
from compiler.load import LoadedSpec
from compiler.lock import LOCK_FILE, file_md5, locked_md5s
from core.content import PREFIX, digest_of_hashes


def promotion_problems(root: Path, loaded: list[LoadedSpec]) -> list[str]:
    """One line per disagreement, naming the file and what to do; empty when every record is honest."""
    lock = {path: md5 for outs in locked_md5s(root, "outs").values() for path, md5 in outs.items()}
    problems: list[str] = []
    for item in loaded:
        project = item.spec.name
        record = read_promoted(root, project)
        if record is not None:
            problems += _record_problems(root, project, record.digest, record.storage_uri,
                                         item.spec.serving.storage_uri, lock)
    return problems


def _record_problems(root: Path, project: str, digest: str, uri: str, storage_uri: str,
                     lock: dict[str, str]) -> list[str]:
    record_path, verdict_path = f"k8s/{project}/{PROMOTED_FILE}", f"reports/{project}/gate/verdict.json"
    fix = "restore it with `git checkout` or run `dvc repro` to promote again"
    problems = [f"{path}: differs from what the pipeline wrote (md5 {file_md5(root / path)} on disk, {locked} in "
                f"{LOCK_FILE}); {fix}" for path in (record_path, verdict_path)
                if (locked := lock.get(path)) is not None and file_md5(root / path) != locked]
    problems += [f"{path}: not recorded in {LOCK_FILE}, so no pipeline run wrote it; {fix}"
                 for path in (record_path, verdict_path) if path not in lock]
    verdict = _read_json(root / verdict_path)
    if verdict is None:
        return [*problems, f"{record_path}: names {digest} but {verdict_path} is missing; {fix}"]
    judged = (verdict.get("judged") or {}).get("files") or {}
    judged_digest = f"sha256:{digest_of_hashes(judged)}" if judged else None
    if verdict.get("passed") is not True:
        problems.append(f"{record_path}: names {digest} but the gate's verdict did not pass; {fix}")
    if judged_digest != digest:
        problems.append(f"{record_path}: names {digest} but the gate judged {judged_digest or 'no files'}; {fix}")
    expected_uri = f"{storage_uri.rstrip('/')}/{project}/{PREFIX}{digest.removeprefix('sha256:')}"
    if uri != expected_uri:
        problems.append(f"{record_path}: storage_uri {uri} is not the content address {expected_uri}; {fix}")
    return problems


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
