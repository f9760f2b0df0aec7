"""Corruption robustness: accuracy on the test split under each corruption and severity.

The corruptions are the table in stages/_augment.py, so "fog at severity 3"
means the same in training and here. Corruptions the model also trained on are
reported apart from held-out ones: accuracy under a corruption the model has
seen says less about conditions nobody planned for.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from vision.data.streams import Images, Mapped, materialise
from vision.training.augment import apply, corruption

Predict = Callable[[Images], np.ndarray]
"""uint8 NHWC images (an array or a stream read a batch at a time) -> predicted class indices."""


COLLAPSE_SHARE = 0.9
"""A model that gives one class to at least this share of the corrupted images has collapsed to it: its
accuracy there is that class's share of the test split, not a measure of what it still recognises."""


@dataclass(frozen=True)
class CorruptionResult:
    corruption: str
    severity: int
    accuracy: float
    seen_in_training: bool
    top_class: int = 0
    """The class predicted most often under this corruption."""
    top_share: float = 0.0
    """Its share of the predictions."""

    @property
    def collapsed(self) -> bool:
        return self.top_share >= COLLAPSE_SHARE


def family_figures(clean: float, results: list[CorruptionResult], figure: str = "accuracy"
                   ) -> dict[str, dict[str, object]]:
    """Per corruption family, in the order measured: the mean of the task's figure (`accuracy`, `map`; each
    result's `accuracy` field holds it) over its severities as `mean_<figure>`, its drop from clean, and whether
    training saw the corruption."""
    families: dict[str, list[CorruptionResult]] = {}
    for r in results:
        families.setdefault(r.corruption, []).append(r)
    return {name: {f"mean_{figure}": round(float(np.mean([r.accuracy for r in rows])), 6),
                   "drop": round(clean - float(np.mean([r.accuracy for r in rows])), 6),
                   "seen_in_training": rows[0].seen_in_training}
            for name, rows in families.items()}


def figure_robustness(clean: float, results: list[CorruptionResult], figure: str) -> dict[str, Any]:
    """A task's robustness figures read on one figure (a detector's mAP50-95, a tagger's mAP over tags): clean,
    per family, the families training never saw and their mean, and the worst condition."""
    families = family_figures(clean, results, figure)
    held_out = sorted(name for name, family in families.items() if not family["seen_in_training"])
    worst = min(results, key=lambda r: (r.accuracy, r.corruption, r.severity)) if results else None
    return {f"clean_{figure}": round(clean, 6), "families": families, "held_out": held_out,
            f"held_out_mean_{figure}": round(float(np.mean([families[n][f"mean_{figure}"] for n in held_out])), 6)
            if held_out else None,
            "worst": None if worst is None else {"corruption": worst.corruption, "severity": worst.severity,
                                                 figure: worst.accuracy}}


def _result(name: str, severity: int, predicted: np.ndarray, labels: np.ndarray, seen: bool) -> CorruptionResult:
    counts = np.bincount(predicted, minlength=1) if len(predicted) else np.zeros(1, int)
    top = int(counts.argmax())
    return CorruptionResult(name, severity, round(float((predicted == labels).mean()), 6) if len(labels) else 0.0,
                            seen, top, round(float(counts[top] / max(len(predicted), 1)), 6))


def corrupted_stream(images: Images, name: str, severity: int, seed: int) -> Mapped:
    """Every image through `name` at `severity`, made as it is read; one seeded pipeline per pass, drawing
    image after image, so every pass (and rerun) draws the same corruptions."""
    size_px = int(images.shape[1])
    return Mapped(images, lambda: _applier(name, severity, size_px, seed))


def _applier(name: str, severity: int, size_px: int, seed: int) -> Callable[[np.ndarray], np.ndarray]:
    pipeline = corruption(name, severity, size_px, seed)
    return lambda image: apply(pipeline, image)


def corrupted(images: Images, name: str, severity: int, seed: int) -> np.ndarray:
    """Every image through `name` at `severity`, in one array (see corrupted_stream)."""
    return materialise(corrupted_stream(images, name, severity, seed))


# Eight parameters: the model, its test data and the spec's sweep, plus the seed and an optional progress hook.
def robustness(predict: Predict, images: Images, labels: np.ndarray, corruptions: list[str],
               severities: list[int], trained_on: set[str], seed: int,
               on_result: Callable[[CorruptionResult], None] | None = None) -> tuple[float, list[CorruptionResult]]:
    """Clean accuracy and one result per corruption x severity (with the class most predicted there);
    `on_result` hears of each as it is measured."""
    clean = float((predict(images) == labels).mean())
    results = []
    for name in corruptions:
        for severity in severities:
            results.append(_result(name, severity, np.asarray(predict(corrupted_stream(images, name, severity, seed))),
                                   labels, name in trained_on))
            if on_result:
                on_result(results[-1])
    return round(clean, 6), results


def summary(clean: float, results: list[CorruptionResult]) -> dict[str, object]:
    """Mean corrupted/clean accuracy ratio overall, for held-out and for seen corruptions, and the worst case."""
    def ratio(rows: list[CorruptionResult]) -> float | None:
        return round(float(np.mean([r.accuracy for r in rows])) / clean, 6) if rows and clean > 0 else None

    held_out = [r for r in results if not r.seen_in_training]
    seen = [r for r in results if r.seen_in_training]
    worst = min(results, key=lambda r: (r.accuracy, r.corruption, r.severity)) if results else None
    return {"clean_accuracy": clean, "mean_ratio": ratio(results), "held_out_mean_ratio": ratio(held_out),
            "seen_mean_ratio": ratio(seen), "held_out": sorted({r.corruption for r in held_out}),
            "worst": None if worst is None else {"corruption": worst.corruption, "severity": worst.severity,
                                                 "accuracy": worst.accuracy}}
