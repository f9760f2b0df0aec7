"""The served bundle, in one torch-free place: its files, which stage writes each, and the typed settings in
them (how to preprocess an image for the model, how to calibrate and when to abstain).

Export writes `model.onnx` and `preprocess.json`, dependability `serving.json` and `ood_state/`; the gate
hashes exactly these files when it judges a model, promote copies exactly these and refuses them if any
byte differs from what the gate judged, and the model server reads them (runtime.artifact).
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

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


@dataclass(frozen=True)
class Preprocessing:
    """`preprocess.json`: what the model takes and how an image becomes that (field order = file order)."""

    input_size_px: int
    mean: list[float]
    std: list[float]
    classes: list[str]
    model_file: str = MODEL_FILE
    input_name: str = "input"
    output_name: str = "logits"
    features_name: str = "features"
    layout: str = "NCHW"
    scale: float = 1 / 255
    variant: str = ""
    precision: str = "fp32"
    target: str = ""
    execution_provider: str = "CPUExecutionProvider"
    task: str = "classification"
    """Which vision task the model answers (vision.tasks, serving.responses)."""
    detection: dict[str, Any] | None = None
    """A detector's input [width, height], strides and decoding (score threshold, NMS IoU, max detections,
    confidence threshold): how the server letterboxes an image and turns the raw outputs into boxes."""
    thresholds: list[float] | None = None
    """A tagger's decision threshold per tag (in `classes` order), chosen on validation: the server answers the
    tags whose probability is above theirs."""

    _ORDER = ("model_file", "input_name", "output_name", "features_name", "layout", "input_size_px", "mean", "std",
              "scale", "classes", "variant", "precision", "target", "execution_provider")

    def to_dict(self) -> dict[str, Any]:
        """The file's content. `task` is written only when it is not classification, so bundles of classifiers
        keep the bytes (and content address) they had before tasks were named."""
        values = asdict(self)
        default_task = next(f.default for f in fields(self) if f.name == "task")
        extra = {"task": self.task} if self.task != default_task else {}
        if self.detection is not None:
            extra["detection"] = self.detection
        if self.thresholds is not None:
            extra["thresholds"] = self.thresholds
        return {**{name: values[name] for name in self._ORDER}, **extra}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Preprocessing:
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})


@dataclass(frozen=True)
class OodSettings:
    detector: str
    threshold: float
    tpr: float
    rule: str = "abstain when the score is above the threshold (higher = more likely out of distribution)"
    state: dict[str, str] = field(default_factory=dict)
    """Array name -> its `.npy` file, relative to the folder of `serving.json`."""


@dataclass(frozen=True)
class ServingSettings:
    """`serving.json`: the fitted temperature and the OOD detector the server abstains with."""

    temperature: float
    ood: OodSettings

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ServingSettings:
        ood = data["ood"]
        return cls(float(data["temperature"]), OodSettings(**{f.name: ood[f.name] for f in fields(OodSettings)
                                                             if f.name in ood}))


def ood_state_file(name: str) -> str:
    """Where a detector's fitted array lives inside the bundle."""
    return f"{OOD_STATE_DIR}/{name}.npy"
