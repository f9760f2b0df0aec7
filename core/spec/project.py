"""The root of a project spec: one file in `specs/` describes one model end to end."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from core.spec._base import NonNegativeInt, SpecModel
from core.spec.cascade import CascadeSection
from core.spec.cluster import ClusterSection
from core.spec.data import DataSection
from core.spec.deployment import CompressSection, DependabilitySection, Robustness, ServingSection, TargetSection
from core.spec.detection import DetectionSection
from core.spec.loop import ActiveLearningSection
from core.spec.training import AugmentSection, ModelSection, TrainSection, auto_augment

ClassName = Annotated[str, Field(min_length=1, max_length=63, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]


GATE_DEFAULTS: dict[str, dict[str, float]] = {"detection": {"min_map": 0.5, "min_map50": 0.75},
                                              "cascade": {"min_map": 0.5, "min_map50": 0.75},
                                              "multilabel": {"min_map": 0.5, "min_tag_ap": 0.3}}
"""The gate's limits a task's spec gets when it does not state its own (detection and a cascade: mAP50-95 and
mAP50; multi-label: mAP over tags and every tag's AP)."""
TASK_SECTIONS: dict[str, tuple[tuple[str, ...], ...]] = {"detection": (("detection",), ("data", "boxes"))}
"""The sections a task's spec gets with their defaults when it leaves them out."""
MIN_CLASSES: dict[str, int] = {"classification": 2, "detection": 1, "multilabel": 2, "cascade": 2}
"""Fewest `classes` a task's spec may name: a detector of one kind of object (cars, trees, defects) is the most
common detector there is; a classifier must tell at least two apart, and a single tag is a two-class classifier
(the tag and its absence)."""


class ProjectSpec(SpecModel):
    """A computer-vision project: data, training, compression, dependability and serving in one file."""

    name: Annotated[str, Field(pattern=r"^[a-z]([-a-z0-9]*[a-z0-9])?$", min_length=1, max_length=40)]
    """Lower-case DNS label starting with a letter, at most 40 characters; it names stages, paths
    and Kubernetes objects (KServe derives longer names from it). Must equal the spec's file name."""
    task: Literal["classification", "detection", "multilabel", "cascade"] = "classification"
    """`classification`: one class per image. `detection`: boxes of the classes in each image (sources with
    boxes: coco, yolo, voc), a single-stage detector, mAP; the `detection` and `data.boxes` sections apply.
    `multilabel`: any number of `classes` per image (scene tags: a manifest's `tags` column, Label Studio
    multiple choices, photo_mosaics), a sigmoid per tag with its own threshold, mAP over tags. `cascade`: a
    detection project and a classification project on its crops joined (the `cascade` section), measured end to
    end (mAP per fine class), gated and served as one; `classes` are the classifier's, and its data are the
    detector's test images (a cascade spec states no data, model, training or compression of its own)."""
    detection: DetectionSection | None = None
    """Detection only (filled with its defaults there): the detector's input size, levels and decoding."""
    seed: NonNegativeInt = 0
    """Seeds every random choice in every stage."""
    classes: Annotated[list[ClassName], Field(min_length=1)]
    """Class names in the order of the model's outputs; they double as folder names. A detector may have one
    class; a classifier and a tagger need at least two."""
    data: DataSection
    """Where images come from and how they are checked, cleaned, split and pruned."""
    augment: AugmentSection = AugmentSection()
    """Training-time augmentations (weather, night, blur, pixelation, occlusion); `augment: auto`, what a spec
    without this section gets, trains on what the gate tests (see `augment`)."""
    model: ModelSection = ModelSection()
    """The network to train; `model: auto` (what a spec without this section gets) lets the train stage choose
    the backbone, its weights and the input size from the data and the target (see `model.backbone`)."""
    train: TrainSection = TrainSection()
    """How the model is trained."""
    compress: CompressSection = CompressSection()
    """Shrink the trained model to the budget the target hardware allows."""
    target: TargetSection = TargetSection()
    """The hardware the model is served on."""
    dependability: DependabilitySection = DependabilitySection()
    """Thresholds the deployable model must meet before it may be promoted."""
    serving: ServingSection = ServingSection()
    """How the promoted model is served by KServe."""
    active_learning: ActiveLearningSection | None = None
    """The data loop: score an unlabelled pool and write the round's label queue (a `select` stage); null: no
    loop."""
    cascade: CascadeSection | None = None
    """Cascade only: the detector and the classifier it joins (and the single-stage baseline it is measured
    against)."""
    cluster: ClusterSection = ClusterSection()
    """How the same pipeline runs on a Kubernetes cluster (Argo Workflows, PyTorchJob, parallel optuna)."""

    @model_validator(mode="before")
    @classmethod
    def _task_defaults(cls, raw: object) -> object:
        """A task's own sections with their defaults (detection's `detection` and `data.boxes`), and its gate's
        limits, so every stage reads typed values (params.yaml shows them) without the spec spelling them out."""
        if isinstance(raw, dict) and raw.get("model") == "auto":
            raw = {**raw, "model": {}}  # every key of the section at its default, `auto`
        if isinstance(raw, dict) and raw.get("augment", "auto") == "auto" and raw.get("task") != "cascade":
            raw = {**raw, "augment": _auto_augment(raw)}
        if isinstance(raw, dict) and raw.get("task", "classification") == "classification":
            raw = _selection_for_recall_gate(raw)
        if not isinstance(raw, dict) or not isinstance(raw.get("task"), str):
            return raw
        filled = dict(raw)
        for path in TASK_SECTIONS.get(raw["task"], ()):
            parent = filled
            for part in path[:-1]:
                if not isinstance(parent.get(part), dict):
                    break
                parent[part] = dict(parent[part])
                parent = parent[part]
            else:
                parent.setdefault(path[-1], {})
        if raw["task"] == "cascade" and "data" not in filled and isinstance(raw.get("cascade"), dict):
            # a cascade's images are its detector's (its test split); the pipeline reads them through its inputs
            filled["data"] = {"sources": [{"kind": "project", "project": raw["cascade"].get("detector")}]}
        limits = GATE_DEFAULTS.get(raw["task"], {})
        dependability = filled.get("dependability", {})
        if limits and isinstance(dependability, dict):
            filled["dependability"] = {**limits, **dependability}
        return filled


def _auto_augment(raw: dict) -> dict[str, float | int]:
    """`augment: auto` from the raw spec's robustness checks (their defaults where it states none); a malformed
    robustness section is left for validation to report, with no augmentation meanwhile."""
    robustness = raw.get("dependability", {}).get("robustness", {}) if isinstance(raw.get("dependability"), dict) \
        else {}
    robustness = robustness if isinstance(robustness, dict) else {}
    defaults = Robustness()
    corruptions = robustness.get("corruptions", defaults.corruptions)
    severities = robustness.get("severities", defaults.severities)
    if not (isinstance(corruptions, list) and all(isinstance(c, str) for c in corruptions)
            and isinstance(severities, list) and all(isinstance(v, int) for v in severities)):
        return {}
    return auto_augment(corruptions, severities)


def _selection_for_recall_gate(raw: dict) -> dict:
    """`train.select_by: auto` of a classifier gated on every class's recall (`dependability.min_class_recall`):
    the epoch, and the search's trials, are chosen by the recall of the class found least often."""
    dependability, train = raw.get("dependability"), raw.get("train", {})
    if not isinstance(dependability, dict) or dependability.get("min_class_recall") is None \
            or not isinstance(train, dict) or train.get("select_by", "auto") != "auto":
        return raw
    return {**raw, "train": {**train, "select_by": "val_min_recall"}}
