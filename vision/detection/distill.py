"""Distillation for detectors: the trained detector teaches its pruned self, location by location.

Written here because no maintained library distils a torchvision FCOS head: the terms are the two the
detection-distillation literature agrees on for dense single-stage heads (class-logit imitation as in
Hinton et al. and box-regression imitation weighted by the teacher's confidence, as in LD/"localization
distillation" and FGD's quality weighting), on the raw outputs Detector.forward returns.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.nn import functional as F

from vision.detection.model import Detector


@dataclass(frozen=True)
class DetectionTeacher:
    """The trained detector, held in a plain dataclass so Lightning neither trains nor checkpoints it."""

    model: Detector
    temperature: float = 4.0
    alpha: float = 0.7
    """Weight of the imitation terms; the detector's own losses get 1 - alpha."""


def _binary_kl(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """KL(teacher || student) of independent per-class Bernoullis given as logits, per element."""
    target = torch.sigmoid(teacher)
    return (F.binary_cross_entropy_with_logits(student, target, reduction="none")
            - F.binary_cross_entropy_with_logits(teacher, target, reduction="none"))


def imitation_loss(student: tuple[torch.Tensor, ...], teacher: tuple[torch.Tensor, ...],
                   temperature: float) -> dict[str, torch.Tensor]:
    """`class_kl`: T^2 * the per-class binary KL of the softened class logits, summed over classes and averaged
    over locations; `box_l1`: L1 between the box regressions, each location weighted by the teacher's
    confidence there (sqrt(class probability x centerness), the score detections are ranked by), so the
    background's arbitrary regressions teach nothing."""
    s_logits, s_boxes, _, _ = student
    t_logits, t_boxes, t_centerness, _ = teacher
    class_kl = _binary_kl(s_logits / temperature, t_logits / temperature).sum(-1).mean() * temperature ** 2
    quality = torch.sqrt(torch.sigmoid(t_logits).amax(-1) * torch.sigmoid(t_centerness))
    box_l1 = (F.l1_loss(s_boxes, t_boxes, reduction="none").sum(-1) * quality).sum() / quality.sum().clamp_min(1e-6)
    return {"class_kl": class_kl, "box_l1": box_l1}
