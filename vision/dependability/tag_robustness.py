"""Robustness per tag: how much of each tag's average precision a corruption family costs, so that a tagger whose
mAP holds under rain while its `night` tag collapses is seen (a mean over tags hides it)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import average_precision_score


def tag_average_precisions(targets: np.ndarray, scores: np.ndarray, classes: Sequence[str]) -> dict[str, float]:
    """Each tag's average precision over the images (tags no image carries are left out, as mAP leaves them)."""
    truth, values = np.asarray(targets) > 0.5, np.asarray(scores, dtype=np.float64)
    return {name: float(average_precision_score(truth[:, i], values[:, i]))
            for i, name in enumerate(classes) if truth[:, i].any()}


def per_tag_drops(clean: dict[str, float], conditions: Sequence[tuple[str, dict[str, float]]]
                  ) -> dict[str, dict[str, float]]:
    """Tag -> corruption family -> the drop of the tag's AP from clean, averaged over the family's severities;
    `conditions` holds (family, each tag's AP) per family and severity, in the order measured."""
    by_family: dict[str, list[dict[str, float]]] = {}
    for family, aps in conditions:
        by_family.setdefault(family, []).append(aps)
    return {tag: {family: round(clean[tag] - float(np.mean([aps[tag] for aps in rows])), 6)
                  for family, rows in by_family.items()}
            for tag in clean}


def worst_tag_drop(robustness: dict[str, Any]) -> tuple[str, str, float] | None:
    """(tag, corruption family, AP drop) of the largest drop any tag suffers, or None without corruptions."""
    drops = [(drop, tag, family) for tag, families in robustness.get("per_tag_drop", {}).items()
             for family, drop in families.items()]
    if not drops:
        return None
    drop, tag, family = max(drops, key=lambda item: (item[0], item[1], item[2]))
    return tag, family, drop
