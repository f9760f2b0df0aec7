"""Third-party web assets (vega, bootstrap, font-awesome, ...) vendored so every report renders offline.

Fleets, factories and secured labs view reports on machines without internet; a page that loads its
scripts from a CDN is blank there. `manifest.json` names each package, its exact version, the files taken
from its npm tarball and the CDN addresses those files stand in for; `vendor/<package>@<version>/` holds
the files and the package's licence, `vendor/SHA256SUMS` their hashes (written by `refresh`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

HERE = Path(__file__).parent
MANIFEST = HERE / "manifest.json"
VENDOR_DIR = HERE / "vendor"
CHECKSUMS = VENDOR_DIR / "SHA256SUMS"
LICENCE_NAMES = ("LICENSE", "LICENSE.txt", "LICENSE.md")


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    files: tuple[str, ...]
    """Paths inside the npm package (its `package/` folder)."""
    urls: tuple[tuple[str, str], ...]
    """(CDN address, file) pairs: the address a page may name and the vendored file it stands for."""

    @property
    def folder_name(self) -> str:
        """`@scope/name` -> `scope-name@version`: one flat folder per package and version."""
        return f"{self.name.removeprefix('@').replace('/', '-')}@{self.version}"

    @property
    def folder(self) -> Path:
        return VENDOR_DIR / self.folder_name

    @property
    def licence(self) -> Path:
        """The package's own licence text; every vendored package must carry one."""
        for name in LICENCE_NAMES:
            if (self.folder / name).is_file():
                return self.folder / name
        raise FileNotFoundError(f"{self.folder_name} has no licence file ({' / '.join(LICENCE_NAMES)})")

    @property
    def members(self) -> tuple[str, ...]:
        """Every vendored file of the package, relative to its folder: the listed files and the licence."""
        return (*self.files, self.licence.name)


@cache
def packages() -> tuple[Package, ...]:
    raw = json.loads(MANIFEST.read_text(encoding="utf-8"))["packages"]
    return tuple(Package(p["name"], p["version"], tuple(p["files"]), tuple(sorted(p["urls"].items())))
                 for p in raw)


def package(name: str) -> Package:
    """The vendored package called `name` (the first version listed, where several are)."""
    for candidate in packages():
        if candidate.name == name:
            return candidate
    raise KeyError(f"{name} is not vendored; add it to {MANIFEST.relative_to(HERE.parent.parent)}")


@cache
def _by_url() -> dict[str, tuple[Package, str]]:
    return {url: (pkg, file) for pkg in packages() for url, file in pkg.urls}


def stand_in(url: str) -> tuple[Package, str] | None:
    """The vendored (package, file) that replaces `url`, or None when nothing does."""
    return _by_url().get(url)


def read_text(pkg: Package, file: str) -> str:
    return (pkg.folder / file).read_text(encoding="utf-8")


def checksum_problems(vendor_dir: Path = VENDOR_DIR) -> list[str]:
    """Every vendored file that is missing, changed or not listed in SHA256SUMS (empty when all is well)."""
    lines = (vendor_dir / CHECKSUMS.name).read_text(encoding="utf-8").splitlines()
    listed = {path: digest for digest, path in (line.split("  ", 1) for line in lines if line.strip())}
    problems = []
    for pkg in packages():
        for file in pkg.members:
            relative = f"{pkg.folder_name}/{file}"
            path = vendor_dir / relative
            if relative not in listed:
                problems.append(f"{relative}: not in {CHECKSUMS.name}")
            elif not path.is_file():
                problems.append(f"{relative}: missing")
            elif hashlib.sha256(path.read_bytes()).hexdigest() != listed[relative]:
                problems.append(f"{relative}: changed since it was vendored (sha256 differs)")
    return problems
