"""The dependability stage's outputs, whatever the task: what serving loads (the temperature, the OOD detector,
its threshold and fitted arrays), the figures the gate reads (metrics.json: the task's test figures, the chosen
OOD detector's summary, robustness, calibration and explanation), every detector on every set (ood.json), the
plot data for `dvc plots` and the three charts every task draws (its figure under corruptions, the reliability
diagram, the OOD score histogram).

How a task measures (which outputs, which corruptions keep its labels, which calibration error, which
explanation) lives in its dependability module, which hands this body an `Assessment` in its own names.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.fsutil import atomic_directory, write_csv, write_json
from stages.runtime import StageContext, StageFailure
from vision.data.streams import Images
from vision.dependability.figures import ood_histogram, reliability_diagram, robustness_heatmap
from vision.dependability.ood_assessment import TPR, OodAssessment
from vision.dependability.ood_sets import folder_images
from vision.dependability.robustness import CorruptionResult
from vision.dependability.serving_state import write_serving_state
from vision.training.augment import enabled


@dataclass(frozen=True)
class Plan:
    """What to measure: the spec keys the stage declares (thresholds are the gate's, so editing one does not
    re-run these measurements)."""

    detector: str
    """A detector name, or 'auto'."""
    corruptions: list[str]
    severities: list[int]
    gradcam_samples: int
    """Images to explain (0 for a task that explains nothing yet)."""
    trained_on: set[str]
    """The corruption families training's augmentations enable: 'seen' ones are reported apart."""

    @classmethod
    def from_spec(cls, ctx: StageContext, explains: bool) -> Plan:
        return cls(ctx.spec("dependability.ood.detector"), list(ctx.spec("dependability.robustness.corruptions")),
                   list(ctx.spec("dependability.robustness.severities")),
                   ctx.spec("dependability.explain").gradcam_samples if explains else 0,
                   set(enabled(ctx.spec("augment"))))


@dataclass(frozen=True)
class Robustness:
    """The task's test figure under each corruption and severity (each result's `accuracy` field holds it)."""

    clean: float
    conditions: list[CorruptionResult]
    figures: dict[str, Any]
    """metrics.json's robustness section, in the task's names."""
    rows: list[dict[str, Any]]
    """robustness.csv: one row per condition, clean last (the robustness plot's data)."""
    title: str
    """The heatmap's title after the project's name."""
    figure_name: str
    """The heatmap's name for the figure: 'accuracy', 'mAP50-95'..."""
    classes: list[str] | None = None
    """A classifier's classes, so the heatmap names the class a collapsed condition predicts."""


def robustness_rows(clean: float, conditions: list[CorruptionResult], column: str) -> list[dict[str, Any]]:
    """robustness.csv with the task's figure under `column`."""
    return ([{"condition": f"{r.corruption} s{r.severity}", column: r.accuracy, "seen_in_training": r.seen_in_training}
             for r in conditions] + [{"condition": "clean", column: clean, "seen_in_training": True}])


@dataclass(frozen=True)
class Calibration:
    """The task's calibration error before and after the temperature fitted on validation, with the reliability
    bins (`confidence`, the hit rate under `hit`, `count`)."""

    temperature: float
    error: str
    """The metrics' key for the error: 'ece', 'dece' (`<error>_before`, `<error>_after`)."""
    error_label: str
    """Its name on the chart and in the log: 'ECE', 'D-ECE'."""
    before: float
    after: float
    rows_before: list[dict[str, float]]
    rows_after: list[dict[str, float]]
    hit: str
    """What a bin's hit rate is: 'accuracy', 'precision', 'share_tagged'."""
    counted: str
    """What a bin counts: 'test images', 'detections'..."""
    title: str
    """The reliability diagram's title after the project's name."""
    extra: dict[str, Any] = field(default_factory=dict)
    """More calibration figures of the task's (per-tag errors, the number of detections)."""

    def figures(self) -> dict[str, Any]:
        return {"temperature": self.temperature, f"{self.error}_before": self.before,
                f"{self.error}_after": self.after, **self.extra}


@dataclass(frozen=True)
class Assessment:
    """What a task measured on its deployable model, in its own names."""

    head: dict[str, Any]
    """metrics.json's first fields: the variant and the task's test figures."""
    ood: OodAssessment
    unreadable: list[str]
    """Files of the spec's OOD folders that could not be decoded."""
    robustness: Robustness
    calibration: Calibration
    explain: dict[str, Any] | None
    """metrics.json's explanation section (None when the task explains nothing yet)."""
    figure: str
    """The key of the clean test figure in `head` ('accuracy', 'map'); the log names it as the heatmap does."""
    notes: str = ""
    """The task's own closing words for the log (ROAD faithfulness, gallery size...)."""


def extra_ood_sets(ctx: StageContext, size_px: int,
                   reader: Callable[[Path, int], np.ndarray] | None = None) -> tuple[dict[str, Images], list[str]]:
    """The spec's `ood_sources` folders as far sets (read as the task presents images: `reader`), and the files
    that could not be decoded; a missing folder or one without a readable image fails the stage."""
    images: dict[str, Images] = {}
    unreadable: list[str] = []
    for folder in ctx.spec("dependability.ood.ood_sources"):
        path = ctx.root / folder
        if not path.is_dir():
            raise StageFailure(f"dependability.ood.ood_sources: folder '{folder}' does not exist")
        found, bad = folder_images(path, size_px, reader)
        if not len(found):
            raise StageFailure(f"dependability.ood.ood_sources: folder '{folder}' holds no readable image")
        images[f"source:{folder}"] = found
        unreadable.extend(bad)
    return images, unreadable


def metrics(result: Assessment) -> dict[str, Any]:
    """The figures the gate reads, in one JSON that `dvc metrics diff` can compare between commits."""
    explain = {"explain": result.explain} if result.explain is not None else {}
    return {**result.head, "ood": result.ood.summary(), "robustness": result.robustness.figures,
            "calibration": result.calibration.figures(), **explain}


def write_assessment(ctx: StageContext, result: Assessment) -> None:
    """Every output of the dependability stage but the task's explanation gallery, and the log's summary."""
    ood, robust, cal = result.ood, result.robustness, result.calibration
    with atomic_directory(ctx.output("serving_state")) as out:
        write_serving_state(out, cal.temperature, ood.detector, ood.threshold, TPR, ood.state)
    figures = metrics(result)
    write_json(ctx.output("metrics"), figures)
    write_json(ctx.output("ood"), ood.record(result.unreadable))
    robustness_heatmap(robust.clean, robust.conditions, ctx.output("robustness_png"),
                       f"{ctx.project}: {robust.title}", robust.classes, figure_name=robust.figure_name)
    reliability_diagram(cal.rows_before, cal.rows_after, cal.temperature, cal.before, cal.after,
                        ctx.output("reliability_png"), f"{ctx.project}: {cal.title}", y_label=cal.hit,
                        counted=cal.counted, error_name=cal.error_label)
    ood_histogram(ood.scores, ood.kinds, ood.threshold, ood.detector, ctx.output("ood_scores_png"),
                  f"{ctx.project}: {ood.detector} scores")
    write_csv(ctx.output("robustness"), robust.rows)
    write_csv(ctx.output("reliability"), cal.rows_after, ("confidence", cal.hit, "count"))
    _log(figures, result)


def _log(figures: dict[str, Any], result: Assessment) -> None:
    ood: dict[str, Any] = figures["ood"]
    if result.ood.choice:
        print(f"dependability: detector auto -> {result.ood.choice.reason}")
    for name in ood["inverted_sets"]:
        print(f"dependability: WARNING {ood['detector']} is inverted on {name} (AUROC "
              f"{ood['sets'][name]['auroc']:.4f} < 0.5): it finds these images more familiar than the test split")
    worst = min(result.robustness.conditions, key=lambda r: (r.accuracy, r.corruption, r.severity), default=None)
    cal = result.calibration
    near = "none" if ood["near_auroc"] is None else f"{ood['near_auroc']:.4f}"
    print(f"dependability: {figures['variant']} test {result.robustness.figure_name} {figures[result.figure]:.4f}; "
          f"{ood['detector']} far-OOD AUROC {ood['far_auroc']:.4f} (FPR95 {ood['far_fpr_at_95_tpr']:.3f}, accepted "
          f"at the serving threshold {ood['far_accepted_fraction']:.3f}), near {near}; worst corruption "
          f"{'none' if worst is None else f'{worst.corruption} s{worst.severity} {worst.accuracy:.4f}'}; "
          f"{cal.error_label} {cal.before:.4f} -> {cal.after:.4f} at T={cal.temperature:.3f}"
          f"{'; ' + result.notes if result.notes else ''}")
