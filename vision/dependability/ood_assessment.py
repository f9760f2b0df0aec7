"""Every out-of-distribution detector a task offers, measured the one way the gate and the server read them.

Whatever the task (a classifier's logits and features, a tagger's, a detector's pooled backbone features), each
detector is fitted on the training split, thresholded to accept `TPR` of validation images (what serving
abstains above), and measured on every far and near set against the test split. With `auto`, the detector is
chosen on validation-only selection sets, so the gate's sets never choose what the gate judges. The task says
only which detectors it has and how each scores its outputs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from vision.dependability.ood import OodMetrics, ood_metrics, threshold_at_tpr
from vision.dependability.ood_choice import DetectorChoice, choose_detector

TPR = 0.95
"""In-distribution images the serving threshold accepts."""


@dataclass(frozen=True)
class Fitted:
    """One detector fitted on the training split: how it scores a population's outputs, and what serving loads."""

    score: Callable[[Any], np.ndarray]
    state: dict[str, np.ndarray]


@dataclass(frozen=True)
class Populations:
    """The task's outputs (whatever its detectors score) on each population the assessment compares."""

    val: Any
    test: Any
    sets: dict[str, Any]
    """The gated and reported far and near sets, by name."""
    kinds: dict[str, str]
    """Each set's kind, 'far' or 'near' (selection sets included)."""
    selection: dict[str, Any]
    """Validation-only sets `auto` chooses on (empty when the spec names the detector)."""


@dataclass(frozen=True)
class OodAssessment:
    """Every detector on every set, and the one serving abstains with."""

    detector: str
    threshold: float
    table: dict[str, dict[str, OodMetrics]]
    """Detector -> reported set -> metrics, each detector at its own serving threshold."""
    kinds: dict[str, str]
    """The reported sets' kinds."""
    scores: dict[str, np.ndarray]
    """The chosen detector's scores on the test split ('test') and each set."""
    state: dict[str, np.ndarray]
    """The chosen detector's fitted arrays: what the model server scores with."""
    choice: DetectorChoice | None
    """How `auto` chose (None when the spec names the detector)."""

    def summary(self) -> dict[str, object]:
        """The chosen detector's figures the gate reads: the worst far set (AUROC, FPR95, share accepted at the
        serving threshold), the worst near set's AUROC, the sets it ranks backwards, and every set's metrics."""
        chosen = self.table[self.detector]
        far = [m for name, m in chosen.items() if self.kinds[name] == "far"]
        near = [m for name, m in chosen.items() if self.kinds[name] == "near"]
        return {"detector": self.detector, "chosen_by": "auto" if self.choice else "spec",
                "threshold": self.threshold, "tpr": TPR,
                "far_auroc": min(m.auroc for m in far), "far_fpr_at_95_tpr": max(m.fpr_at_95_tpr for m in far),
                "far_accepted_fraction": max(m.accepted_fraction for m in far),
                "near_auroc": min(m.auroc for m in near) if near else None,
                "inverted_sets": sorted(name for name, m in chosen.items() if m.inverted),
                "sets": {name: asdict(m) for name, m in chosen.items()}}

    def record(self, unreadable: list[str]) -> dict[str, object]:
        """ood.json: every detector on every set, the choice, and the spec's OOD files that could not be read."""
        return {"detector": self.detector, "tpr": TPR, "set_kinds": self.kinds,
                "choice": self.choice.as_dict() if self.choice else None, "unreadable_ood_files": unreadable,
                "detectors": {d: {s: asdict(m) for s, m in sets.items()} for d, sets in self.table.items()}}


def assess_detectors(fits: dict[str, Callable[[], Fitted]], seen: Populations, chosen: str,
                     on_detector: Callable[[str], None] | None = None) -> OodAssessment:
    """Fit each detector (`fits`, in order), threshold it on validation, measure it on every set; `chosen` names
    the serving detector, or `auto` picks it on `seen.selection`."""
    if chosen == "auto" and not seen.selection:
        raise ValueError("detector 'auto' needs selection sets")
    if chosen != "auto" and chosen not in fits:
        raise ValueError(f"detector '{chosen}' is not one of {sorted(fits)}")
    table: dict[str, dict[str, OodMetrics]] = {}
    picked: dict[str, dict[str, OodMetrics]] = {}
    kept: dict[str, tuple[float, dict[str, np.ndarray], dict[str, np.ndarray]]] = {}
    for name, fit in fits.items():
        detector = fit()
        val_scores, test_scores = detector.score(seen.val), detector.score(seen.test)
        threshold = round(threshold_at_tpr(val_scores, TPR), 6)
        per_set = {set_name: detector.score(outputs) for set_name, outputs in seen.sets.items()}
        table[name] = {set_name: ood_metrics(test_scores, scores, TPR, threshold)
                       for set_name, scores in per_set.items()}
        if chosen == "auto":
            picked[name] = {set_name: ood_metrics(val_scores, detector.score(outputs), TPR, threshold)
                            for set_name, outputs in seen.selection.items()}
        kept[name] = (threshold, {"test": test_scores, **per_set}, detector.state)
        if on_detector:
            on_detector(name)
    choice = choose_detector(picked, seen.kinds) if chosen == "auto" else None
    name = choice.detector if choice else chosen
    threshold, scores, state = kept[name]
    return OodAssessment(name, threshold, table, {s: seen.kinds[s] for s in seen.sets}, scores, state, choice)
