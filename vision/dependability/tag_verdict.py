"""A tagger's gate checks: test mAP over tags, every tag's own AP (so one tag the model never finds cannot hide
behind the mean), the OOD, corruption and calibration checks every task has, with hints that name the tags."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vision.dependability.verdict import Check, ood_checks, robustness_checks


@dataclass(frozen=True)
class TagThresholds:
    """The spec's limits for a tagger (the keys the multi-label gate declares)."""

    min_map: float
    min_tag_ap: float
    min_auroc: float
    max_accepted_fraction: float
    max_map_drop: float
    max_ece: float


TAG_HINT = ("add images showing the tag (and images without it that look alike), weigh rare tags up "
            "(train.balance: loss), train longer (train.epochs) or search hyperparameters (train.hpo); "
            "compression may cost AP too (compress.budget.max_accuracy_drop)")


def _weakest(per_tag: dict[str, dict[str, Any]], count: int = 3) -> list[tuple[str, float]]:
    """The tags of lowest AP first; a tag no test image carries has no AP and counts as 0 (its floor cannot be
    shown to hold)."""
    return sorted(((tag, row["ap"] or 0.0) for tag, row in per_tag.items()), key=lambda item: (item[1], item[0]))[
        :count]


def tag_checks(figures: dict[str, Any], ood_report: dict[str, Any], limits: TagThresholds) -> list[Check]:
    """mAP over tags and the weakest tag's AP of the deployable tagger, then OOD, each corruption family's drop
    of mAP, and the tag probabilities' ECE after temperature scaling."""
    per_tag: dict[str, dict[str, Any]] = figures["per_tag"]
    weakest = _weakest(per_tag)
    lowest = "lowest AP: " + ", ".join(f"'{tag}' {ap:g}" for tag, ap in weakest) + "; "
    below = [(tag, ap) for tag, ap in _weakest(per_tag, len(per_tag)) if ap < limits.min_tag_ap]
    named = ", ".join(f"'{tag}' {ap:g} ({per_tag[tag]['support']} test images)" if per_tag[tag]["ap"] is not None
                      else f"'{tag}' (no test image carries it: add some)" for tag, ap in below)
    worst_tag, worst_ap = weakest[0]
    return [
        Check("map", "dependability.min_map", figures["map"], limits.min_map, ">=", lowest + TAG_HINT),
        Check("tag_ap", "dependability.min_tag_ap", worst_ap, limits.min_tag_ap, ">=",
              f"below the limit: {named or repr(worst_tag)}; {TAG_HINT}"),
        *ood_checks(figures["ood"], ood_report, limits.min_auroc, limits.max_accepted_fraction),
        *robustness_checks(figures["robustness"], limits.max_map_drop),
        Check("calibration_ece", "dependability.calibration.max_ece", figures["calibration"]["ece_after"],
              limits.max_ece, "<=", "one temperature is already fitted over every tag; more validation images, or "
              "label smoothing (train.label_smoothing), usually help"),
    ]
