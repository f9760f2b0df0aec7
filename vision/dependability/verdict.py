"""The gate's checks: every measured figure against the spec's threshold for it, with what to change.

Limits are inclusive: a figure exactly at its threshold passes (`accuracy >=
min_accuracy`, `ece <= max_ece`). Measured figures are rounded to 6 decimals
where they are written, so "exactly at" means at that precision.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from core.spec.deployment import Calibration, CompressionBudget


def figure(value: float) -> str:
    """A measured value or limit as people read it: counts with thousands separators, the rest to 6 digits."""
    if float(value).is_integer() and abs(value) >= 10_000:
        return f"{int(value):,}"
    return f"{value:g}"


def signed(value: float) -> str:
    return ("+" if value >= 0 else "-") + figure(abs(value))


@dataclass(frozen=True)
class Check:
    name: str
    spec_key: str
    measured: float
    threshold: float
    rule: Literal[">=", "<="]
    hint: str
    """What to change when the check fails."""

    @property
    def passed(self) -> bool:
        return self.measured >= self.threshold if self.rule == ">=" else self.measured <= self.threshold

    @property
    def margin(self) -> float:
        """How far inside the limit the figure is (negative: how far outside)."""
        return round(self.measured - self.threshold if self.rule == ">=" else self.threshold - self.measured, 6)

    def line(self) -> str:
        verb = "at least" if self.rule == ">=" else "at most"
        return (f"{self.name}: measured {figure(self.measured)}, {self.spec_key} needs {verb} "
                f"{figure(self.threshold)} (short by {figure(abs(self.margin))}); {self.hint}")

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "margin": self.margin, "passed": self.passed}


def _best_detector(ood_table: dict[str, Any], kinds: dict[str, str], figure_name: str) -> tuple[str, float]:
    """The detector with the best worst-case far-set figure (highest AUROC, lowest accepted fraction), to
    suggest when the chosen one falls short."""
    sign = -1 if figure_name == "accepted_fraction" else 1

    def worst(detector: str) -> float:
        return min(sign * m[figure_name] for s, m in ood_table[detector].items() if kinds[s] == "far")

    best = max(sorted(ood_table), key=worst)
    return best, sign * worst(best)


def _detector_hint(ood: dict[str, Any], ood_report: dict[str, Any], figure_name: str) -> str:
    best, value = _best_detector(ood_report["detectors"], ood_report["set_kinds"], figure_name)
    measured = ood["far_auroc"] if figure_name == "auroc" else ood["far_accepted_fraction"]
    better = value > measured if figure_name == "auroc" else value < measured
    if best != ood["detector"] and better:
        return (f"{best} reaches {value:g} on these sets: set dependability.ood.detector: {best}, or auto to "
                "choose on validation-only sets")
    return ("no other detector does better: train longer or with more data, or add examples of what serving must "
            "refuse (dependability.ood.ood_sources) and relax the limit only if they are really in-distribution")


def _accuracy_hint(figures: dict[str, Any]) -> str:
    """Where accuracy is lost first: the classes with the lowest recall, then what to change."""
    recall = figures.get("recall_by_class") or {}
    weakest = sorted(recall.items(), key=lambda item: (item[1], item[0]))[:3]
    where = ("lowest per-class recall: " + ", ".join(f"'{name}' {value:g}" for name, value in weakest)
             + " (a rare class: add images or balance it; a small detail: raise model.input_size_px); "
             if weakest and weakest[0][1] < figures["accuracy"] else "")
    return (where + "train longer (train.epochs), search hyperparameters (train.hpo) or prune less data "
            "(data.pruning.budget); compression may cost accuracy too (compress.budget.max_accuracy_drop)")


def _class_recall_check(recall: dict[str, float], limit: float) -> Check:
    below = sorted((value, name) for name, value in recall.items() if value < limit)
    worst_value, worst = min((value, name) for name, value in recall.items())
    named = ", ".join(f"'{name}' {value:g}" for value, name in below)
    return Check("class_recall", "dependability.min_class_recall", worst_value, limit, ">=",
                 f"below the limit: {named or worst}; balance the classes (more images of them, or class-balanced "
                 "sampling), raise model.input_size_px when what tells them apart is small, and select the epoch "
                 "by macro-F1 (train.select_by: val_macro_f1)")


LABEL_PRESERVING = ("dependability.robustness.corruptions is your statement of conditions that do not change "
                    "the label: if {name} can change it on your data (noise or low light that looks like a defect, "
                    "blur that hides one), remove it from the list instead")


def _robustness_hint(name: str, family: dict[str, Any]) -> str:
    collapsed = family.get("collapsed") or []
    head = ""
    if collapsed:
        worst = max(collapsed, key=lambda c: (c["share"], -c["severity"]))
        head = (f"the model collapses to one class: at severity {worst['severity']} it answers '{worst['class']}' "
                f"for {worst['share']:.0%} of the images; ")
    advice = (f"raise augment.{name} or augment.severity" if family["seen_in_training"]
              else f"add {name} to the training augmentations (augment.{name})")  # every family is one
    return f"{head}{advice}; {LABEL_PRESERVING.format(name=name)}"


def warnings(figures: dict[str, Any]) -> list[str]:
    """What is worth a person's attention although no threshold covers it."""
    ood = figures["ood"]
    return [f"{ood['detector']} is inverted on {name} (AUROC {ood['sets'][name]['auroc']:g} < 0.5): it scores "
            "these out-of-distribution images as more familiar than the test images; set "
            "dependability.ood.detector: auto or another detector" for name in ood.get("inverted_sets", [])]


@dataclass(frozen=True)
class Thresholds:
    """The spec's dependability limits (the keys the gate declares)."""

    min_accuracy: float
    min_auroc: float
    max_accepted_fraction: float
    max_accuracy_drop: float
    max_ece: float
    min_class_recall: float | None = None

    # Six parameters: one per spec key the gate declares.
    @classmethod
    def from_spec(cls, min_accuracy: float, min_auroc: float, max_accepted_fraction: float,
                  max_accuracy_drop: float, calibration: Calibration,
                  min_class_recall: float | None = None) -> Thresholds:
        """From the validated spec keys the gate declares (it does not read the rest of `dependability`)."""
        return cls(min_accuracy, min_auroc, max_accepted_fraction, max_accuracy_drop, calibration.max_ece,
                   min_class_recall)


def ood_checks(ood: dict[str, Any], ood_report: dict[str, Any], min_auroc: float, max_accepted_fraction: float
               ) -> list[Check]:
    """The far sets' worst AUROC and the share of them serving accepts, whatever the task."""
    return [
        Check("ood_auroc", "dependability.ood.min_auroc", ood["far_auroc"], min_auroc, ">=",
              _detector_hint(ood, ood_report, "auroc")),
        Check("ood_accepted_fraction", "dependability.ood.max_accepted_fraction", ood["far_accepted_fraction"],
              max_accepted_fraction, "<=", _detector_hint(ood, ood_report, "accepted_fraction")),
    ]


def robustness_checks(robustness: dict[str, Any], max_drop: float) -> list[Check]:
    """Each corruption family's drop of the task's figure from clean, one check per family."""
    return [Check(f"robustness.{name}", "dependability.robustness.max_accuracy_drop", family["drop"], max_drop, "<=",
                  _robustness_hint(name, {"collapsed": [], **family}))
            for name, family in sorted(robustness["families"].items())]


def dependability_checks(figures: dict[str, Any], ood_report: dict[str, Any], limits: Thresholds) -> list[Check]:
    cal = figures["calibration"]
    return [
        Check("accuracy", "dependability.min_accuracy", figures["accuracy"], limits.min_accuracy, ">=",
              _accuracy_hint(figures)),
        *([_class_recall_check(figures["recall_by_class"], limits.min_class_recall)]
          if limits.min_class_recall is not None and figures.get("recall_by_class") else []),
        *ood_checks(figures["ood"], ood_report, limits.min_auroc, limits.max_accepted_fraction),
        *robustness_checks(figures["robustness"], limits.max_accuracy_drop),
        Check("calibration_ece", "dependability.calibration.max_ece", cal["ece_after"], limits.max_ece, "<=",
              "temperature scaling is already applied; more validation data or label smoothing "
              "(train.label_smoothing) usually helps"),
    ]


def budget_checks(export: dict[str, Any], budget: CompressionBudget, score: str = "val_accuracy") -> list[Check]:
    """The deployable model against compress.budget, from the export stage's measurements; the drop is read on
    the task's validation figure `score` (the export summary's `<score>_drop`)."""
    relax = "or change compress.methods / compress.max_prune_ratio"
    measured = {"max_params": export["params"], "max_macs": export["macs"],
                "max_latency_ms": export["latency_ms_1_thread"]}
    checks = [Check(f"budget.{key.removeprefix('max_')}", f"compress.budget.{key}", measured[key], limit, "<=",
                    f"relax compress.budget.{key} {relax}")
              for key in ("max_params", "max_macs", "max_latency_ms")
              if (limit := getattr(budget, key)) is not None]
    checks.append(Check(f"budget.{score.removeprefix('val_')}_drop", "compress.budget.max_accuracy_drop",
                        export[f"{score}_drop"], budget.max_accuracy_drop, "<=",
                        f"relax compress.budget.max_accuracy_drop {relax}"))
    return checks


@dataclass(frozen=True)
class DetectionThresholds:
    """The spec's limits for a detector (the keys the detection gate declares)."""

    min_map: float
    min_map50: float
    min_auroc: float
    max_accepted_fraction: float
    max_map_drop: float
    max_ece: float


MAP_HINT = ("train longer (train.epochs), search hyperparameters (train.hpo), raise detection.input_size_px when "
            "objects are small, or prune less data (data.pruning.budget); compression may cost mAP too "
            "(compress.budget.max_accuracy_drop)")


def detection_checks(figures: dict[str, Any], ood_report: dict[str, Any], limits: DetectionThresholds) -> list[Check]:
    """mAP50-95 and mAP50 of the deployable detector, its image-level OOD figures, each corruption family's
    drop of mAP50-95, and D-ECE after temperature scaling."""
    weakest = sorted(figures.get("per_class_ap", {}).items(), key=lambda item: (item[1], item[0]))[:3]
    where = ("lowest AP: " + ", ".join(f"'{n}' {v:g}" for n, v in weakest) + "; ") if weakest else ""
    return [
        Check("map", "dependability.min_map", figures["map"], limits.min_map, ">=", where + MAP_HINT),
        Check("map50", "dependability.min_map50", figures["map50"], limits.min_map50, ">=", where + MAP_HINT),
        *ood_checks(figures["ood"], ood_report, limits.min_auroc, limits.max_accepted_fraction),
        *robustness_checks(figures["robustness"], limits.max_map_drop),
        Check("calibration_dece", "dependability.calibration.max_ece", figures["calibration"]["dece_after"],
              limits.max_ece, "<=", "temperature scaling is already applied; more validation images with boxes "
              "usually help"),
    ]


def verdict(project: str, variant: str, checks: list[Check], notes: list[str] | None = None) -> dict[str, Any]:
    failed = [c for c in checks if not c.passed]
    return {"project": project, "variant": variant, "passed": not failed,
            "failed": [c.name for c in failed], "checks": [c.as_dict() for c in checks], "warnings": notes or []}
