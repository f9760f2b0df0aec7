"""What every promote stage does: take the gate's passing verdict, copy exactly the files it judged into the
release, write the promotion record `autodl compile` renders the serving manifests from, and render them (through
the compiler's command line: stages never import it)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from core.content import PREFIX
from core.fsutil import read_json
from runtime.bundle import file_hashes
from stages.runtime import StageContext, StageFailure


def passing_verdict(ctx: StageContext) -> tuple[dict[str, Any], dict[str, str]]:
    """The gate's verdict and the sha256 of every file it judged; a failure unless it passed and judged files."""
    verdict = read_json(ctx.input("verdict"))
    if verdict.get("passed") is not True:
        raise StageFailure(f"the gate did not pass for {ctx.project}: nothing is promoted")
    judged = (verdict.get("judged") or {}).get("files")
    if not judged:
        raise StageFailure(f"{ctx.input('verdict')} records no judged files: re-run the gate before promoting")
    return verdict, judged


def copy_exactly(members: dict[str, Path], out: Path, judged: dict[str, str] | None) -> None:
    """Copy each member to its name under `out`; with `judged` (the gate's sha256 per file), refuse unless the
    copied bytes are exactly what the gate judged."""
    for name, source in members.items():
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, out / name)
    if judged is None:
        return
    copied = file_hashes({name: out / name for name in members})
    if copied != judged:
        differing = sorted(n for n in set(copied) | set(judged) if copied.get(n) != judged.get(n))
        raise StageFailure(f"the release differs from what the gate judged ({', '.join(differing[:5])}): nothing is "
                           "promoted; run `dvc repro` so the gate judges these files")


def promotion_record(project: str, storage_uri: str, digest: str, variant: str, extra: str = "") -> str:
    """`k8s/<project>/promoted.yaml`: the content address of the release and what it holds (`extra`: further
    `key: value` lines, such as a cascade's two models' digests)."""
    return (f"# Written by the promote stage of `dvc repro` after a passing gate; do not edit.\n"
            f"# `autodl compile` renders k8s/{project}/ from it: the model that serves after a merge.\n"
            f"storage_uri: {storage_uri.rstrip('/')}/{project}/{PREFIX}{digest}\n"
            f"digest: sha256:{digest}\n"
            f"variant: {variant}\n" + extra)


def render_manifests(root: Path, project: str) -> str:
    """Re-render the project's manifests (the InferenceService now names the new digest) through the
    compiler's command line: stages never import the compiler, and `autodl compile` is what CI checks against.
    Only `k8s/<project>/` and its Argo CD Application: params.yaml may hold a `dvc exp run -S` override."""
    done = subprocess.run([sys.executable, "-m", "cli.main", "--root", str(root), "compile",
                           "--only", f"k8s/{project}/", "--only", f"k8s/argocd/{project}.yaml"],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise StageFailure(f"`autodl compile` failed after recording the promotion:\n{done.stderr.strip()}")
    return done.stdout.strip()
