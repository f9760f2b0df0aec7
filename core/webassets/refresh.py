"""`python -m core.webassets.refresh`: fetch the packages `manifest.json` names from the npm registry.

A maintainer's command, never run by the pipeline or the tests (they use what is committed). npm checks
each tarball against the registry's integrity hash; the files the manifest lists and the package's licence
are copied to `vendor/<package>@<version>/` and hashed into `vendor/SHA256SUMS`. A package whose tarball
carries no licence (vega, popper.js) keeps the licence text committed from its repository.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from core.webassets import CHECKSUMS, LICENCE_NAMES, VENDOR_DIR, Package, packages


def fetch(pkg: Package, scratch: Path) -> None:
    done = subprocess.run(["npm", "pack", f"{pkg.name}@{pkg.version}", "--silent", "--pack-destination", str(scratch)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"npm pack {pkg.name}@{pkg.version} failed: {done.stderr.strip()}")
    unpacked = scratch / pkg.folder_name
    with tarfile.open(scratch / done.stdout.strip().splitlines()[-1]) as archive:
        archive.extractall(unpacked, filter="data")
    root = unpacked / "package"
    kept_licence = next((pkg.folder / n for n in LICENCE_NAMES if (pkg.folder / n).is_file()), None)
    licence = next((root / n for n in LICENCE_NAMES if (root / n).is_file()), None)
    if licence is None and kept_licence is None:
        raise SystemExit(f"{pkg.name}@{pkg.version} ships no licence: commit its text as {pkg.folder}/LICENSE")
    fresh = scratch / "out" / pkg.folder_name
    for file in pkg.files:
        (fresh / file).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(root / file, fresh / file)
    shutil.copyfile(licence or kept_licence, fresh / (licence or kept_licence).name)  # type: ignore[union-attr]
    shutil.rmtree(pkg.folder, ignore_errors=True)
    shutil.copytree(fresh, pkg.folder)


def write_checksums() -> None:
    lines = []
    for pkg in packages():
        for file in pkg.members:
            digest = hashlib.sha256((pkg.folder / file).read_bytes()).hexdigest()
            lines.append(f"{digest}  {pkg.folder_name}/{file}")
    CHECKSUMS.write_text("\n".join(sorted(lines, key=lambda line: line.split("  ", 1)[1])) + "\n", encoding="utf-8")


def main() -> int:
    VENDOR_DIR.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        for pkg in packages():
            print(f"fetching {pkg.name}@{pkg.version}", file=sys.stderr)
            fetch(pkg, Path(scratch))
    wanted = {pkg.folder_name for pkg in packages()}
    for stale in sorted(p for p in VENDOR_DIR.iterdir() if p.is_dir() and p.name not in wanted):
        shutil.rmtree(stale)
    write_checksums()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
