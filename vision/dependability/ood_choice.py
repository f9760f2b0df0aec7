"""`dependability.ood.detector: auto`: pick the detector that does best what serving does, on data the gate
never reports.

The candidates are scored on selection sets (the validation split as in-distribution; crops of photos held out
of the gate's pool, fresh noise, and the validation images shuffled and occluded as out-of-distribution), each
with its own serving threshold set on the validation split. The winner accepts the smallest share of the worst
far selection set; ties go to the higher worst far AUROC, then the higher mean AUROC over every selection set,
then the order of `DETECTORS`. A detector inverted on any selection set (AUROC below 0.5) is chosen only when
every detector is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vision.dependability.ood import DETECTORS, OodMetrics


@dataclass(frozen=True)
class Standing:
    """One detector's figures on the selection sets."""

    worst_far_accepted: float
    worst_far_auroc: float
    mean_auroc: float
    inverted_on: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"worst_far_accepted": self.worst_far_accepted, "worst_far_auroc": self.worst_far_auroc,
                "mean_auroc": self.mean_auroc, "inverted_on": list(self.inverted_on)}


@dataclass(frozen=True)
class DetectorChoice:
    detector: str
    reason: str
    """One sentence a person reads in the stage log and the report."""
    standings: dict[str, Standing]

    def as_dict(self) -> dict[str, Any]:
        return {"detector": self.detector, "reason": self.reason,
                "standings": {name: s.as_dict() for name, s in self.standings.items()}}


def standing(per_set: dict[str, OodMetrics], kinds: dict[str, str]) -> Standing:
    far = [m for name, m in per_set.items() if kinds[name] == "far"]
    if not far:
        raise ValueError("detector selection needs at least one far set")
    return Standing(worst_far_accepted=max(m.accepted_fraction for m in far),
                    worst_far_auroc=min(m.auroc for m in far),
                    mean_auroc=round(sum(m.auroc for m in per_set.values()) / len(per_set), 6),
                    inverted_on=tuple(sorted(name for name, m in per_set.items() if m.inverted)))


def choose_detector(selection: dict[str, dict[str, OodMetrics]], kinds: dict[str, str]) -> DetectorChoice:
    """The best detector on the selection sets (detector -> set -> metrics), and why."""
    standings = {name: standing(per_set, kinds) for name, per_set in selection.items()}
    upright = [name for name, s in standings.items() if not s.inverted_on] or list(standings)

    def rank(name: str) -> tuple[float, float, float, int]:
        s = standings[name]
        order = DETECTORS.index(name) if name in DETECTORS else len(DETECTORS)
        return (s.worst_far_accepted, -s.worst_far_auroc, -s.mean_auroc, order)

    ordered = sorted(upright, key=rank)
    best, s = ordered[0], standings[ordered[0]]
    reason = (f"{best} accepts {s.worst_far_accepted:.1%} of the worst far selection set at its serving threshold "
              f"(worst far AUROC {s.worst_far_auroc:.4f}, mean AUROC {s.mean_auroc:.4f})")
    if len(ordered) > 1:
        runner = standings[ordered[1]]
        reason += (f"; next {ordered[1]} accepts {runner.worst_far_accepted:.1%} "
                   f"(worst far AUROC {runner.worst_far_auroc:.4f})")
    skipped = sorted(set(standings) - set(upright))
    if skipped:
        reason += f"; inverted on a selection set, so not chosen: {', '.join(skipped)}"
    elif s.inverted_on:
        reason += "; every detector is inverted on some selection set"
    return DetectorChoice(best, reason + ". Chosen on validation-only sets, never the sets the gate reports.",
                          standings)
