"""The served bundle's layout, in one torch-free place: which files of which stage the model server needs.

The gate hashes exactly these files when it judges a model, promote copies exactly these files and
refuses them if any byte differs from what the gate judged, and the server reads them (serving.artifact).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

MODEL_FILE, PREPROCESS_FILE, SERVING_FILE, OOD_STATE_DIR = "model.onnx", "preprocess.json", "serving.json", "ood_state"
FILES_BY_STAGE: dict[str, tuple[str, ...]] = {"export": (MODEL_FILE, PREPROCESS_FILE),
                                              "dependability": (SERVING_FILE, OOD_STATE_DIR)}
"""Bundle member -> the stage whose output folder holds it."""
OPTIONAL = frozenset({OOD_STATE_DIR})
"""Logit-based OOD detectors have no fitted state."""


class IncompleteBundle(FileNotFoundError):
    """A required member is missing from a stage's output."""


def bundle_members(folders: dict[str, Path]) -> dict[str, Path]:
    """Every file of the bundle, keyed by its relative POSIX path inside the bundle; `folders` maps each stage
    name of FILES_BY_STAGE to its output folder."""
    members: dict[str, Path] = {}
    for stage, names in FILES_BY_STAGE.items():
        for name in names:
            source = folders[stage] / name
            if source.is_dir():
                members.update({f"{name}/{p.relative_to(source).as_posix()}": p
                                for p in sorted(source.rglob("*")) if p.is_file()})
            elif source.is_file():
                members[name] = source
            elif name not in OPTIONAL:
                raise IncompleteBundle(f"{source} is missing: re-run the {stage} stage")
    return dict(sorted(members.items()))


def file_hashes(members: dict[str, Path]) -> dict[str, str]:
    """sha256 hex of each member's bytes."""
    return {name: hashlib.sha256(path.read_bytes()).hexdigest() for name, path in members.items()}
