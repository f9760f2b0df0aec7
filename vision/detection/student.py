"""A smaller detector distilled from the trained one (compress.student / compress.student_head).

Most of a single-stage detector's MACs are in its feature pyramid and head towers (56% of the demo detector's),
so pruning the backbone alone cannot reach 1.5x, and pruning the towers in place costs the boxes they carry. A
student with a narrower pyramid and fewer head convolutions is trained anew while imitating the trained
detector (vision.detection.distill). When it keeps the trained backbone, it starts from that backbone as the
trained detector fine-tuned it: the task's features are already there and only the pyramid and head are new.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace

from core.spec.deployment import CompressSection, StudentHead
from core.spec.training import TrainSection, offline_weights
from vision.detection.model import Detector, DetectorConfig, build_detector


@dataclass(frozen=True)
class StudentPlan:
    """The student detector: its shape, its backbone's offline weights and its training (train.epochs)."""

    config: DetectorConfig
    pretrained: str | None
    training: TrainSection


def student_plan(compression: CompressSection, trained: Detector, training: TrainSection) -> StudentPlan | None:
    """The student when compress.student or compress.student_head asks for one (a student backbone alone gets
    the default student head), else None."""
    if compression.student is None and compression.student_head is None:
        return None
    head = compression.student_head or StudentHead()
    backbone = compression.student or trained.config.backbone
    config = replace(trained.config, backbone=backbone, fpn_channels=head.fpn_channels, head_convs=head.head_convs)
    return StudentPlan(config, offline_weights(backbone), training.model_copy(update={"hpo": None}))


def initial_student(plan: StudentPlan, trained: Detector) -> Detector:
    """The untrained student: on the trained detector's own backbone (a copy of its fine-tuned weights) when the
    backbone is the same, else on the student backbone's offline ImageNet weights where they ship."""
    if plan.config.backbone == trained.config.backbone:
        return Detector(plan.config, copy.deepcopy(trained.fcos.backbone.body))
    return build_detector(plan.config, plan.pretrained)
