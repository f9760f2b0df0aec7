"""One round of the data loop, decided: which pool images people label (in queue order), how uncertain each
pool image is, and which images the model may label itself. Pure: it reads scores, never models."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from core.spec.loop import CASCADE_STRATEGIES
from vision.loop import batch
from vision.loop.uncertainty import (
    CLASSIFICATION_SCORES,
    binary_entropy,
    box_uncertainty,
    ensemble_box_disagreement,
    ensemble_disagreement,
    fine_class_uncertainty,
    mutual_information,
)


@dataclass(frozen=True)
class Round:
    queue: np.ndarray
    """Pool indices sent to people, in the order they were picked."""
    uncertainty: np.ndarray
    """The figure the strategy ranked by, per pool image (zeros for diversity-only strategies)."""
    figures: dict[str, np.ndarray]
    """Every uncertainty figure computed, per pool image (scores.csv)."""


@dataclass(frozen=True)
class Choice:
    strategy: str
    k: int
    seed: int
    pool_factor: float = 4.0


def by_diversity(choice: Choice, uncertainty: np.ndarray, embeddings: np.ndarray, covered: np.ndarray
                  ) -> np.ndarray | None:
    """The strategies that are not a plain ranking; None for those that are."""
    if choice.strategy == "random":
        return batch.random_batch(len(uncertainty), choice.k, choice.seed)
    if choice.strategy == "coreset":
        return batch.coreset(embeddings, choice.k, covered)
    if choice.strategy == "hybrid":
        return batch.hybrid(uncertainty, embeddings, choice.k, choice.pool_factor, covered)
    return None


def classification_round(choice: Choice, probabilities: np.ndarray, features: np.ndarray, embeddings: np.ndarray,
                         covered: np.ndarray, mc_samples: np.ndarray | None = None,
                         member_probabilities: np.ndarray | None = None) -> Round:
    """`probabilities` (N x C, calibrated) and `features` (N x D) from the deployable model; `embeddings` in the
    labelled set's embedding space, `covered` the labelled set's; MC-dropout samples (T x N x C) for `bald` and
    members' probabilities (M x N x C) for `ensemble`."""
    figures = {name: score(probabilities) for name, score in CLASSIFICATION_SCORES.items()}
    if mc_samples is not None:
        figures["bald"] = mutual_information(mc_samples)
    if member_probabilities is not None:
        figures["ensemble"] = ensemble_disagreement(member_probabilities)
    strategy = choice.strategy
    ranked_by = "margin" if strategy in ("hybrid", "random", "coreset") else strategy
    if strategy == "badge":
        return Round(batch.badge(probabilities, features, choice.k, choice.seed), figures["entropy"], figures)
    if ranked_by not in figures:
        raise ValueError(f"strategy {strategy} needs its samples (bald: MC dropout; ensemble: members' outputs)")
    uncertainty = figures[ranked_by]
    queue = by_diversity(choice, uncertainty, embeddings, covered)
    return Round(batch.top_k(uncertainty, choice.k) if queue is None else queue, uncertainty, figures)


def box_margins(box_scores: Sequence[np.ndarray]) -> np.ndarray:
    """Per image, the largest 1 - |2s - 1| of its box confidences (1 at s = 0.5; 0 without boxes)."""
    return np.array([float((1 - np.abs(2 * s - 1)).max()) if len(s) else 0.0 for s in box_scores])


def detection_round(choice: Choice, box_scores: Sequence[np.ndarray], embeddings: np.ndarray, covered: np.ndarray,
                    low_confidence: tuple[float, float],
                    member_boxes: Sequence[Sequence[tuple[np.ndarray, np.ndarray]]] | None = None) -> Round:
    """`box_scores`: each pool image's calibrated detection confidences; `member_boxes`: per image, each
    ensemble member's (boxes, labels). A box's confidence is a two-way answer (object or not), so least
    confidence, margin and entropy rank boxes alike; per image they differ in how boxes add up: the largest
    box figure, plus a small share of the unsure boxes for entropy (vision.loop.uncertainty.BoxUncertainty)."""
    aggregates = [box_uncertainty(s, low_confidence) for s in box_scores]
    figures = {
        "entropy": np.array([a.score for a in aggregates]),
        "mean_entropy": np.array([a.mean_entropy for a in aggregates]),
        "least_confidence": np.array([float((np.minimum(s, 1 - s)).max()) if len(s) else 0.0 for s in box_scores]),
        "margin": box_margins(box_scores),
        "low_confidence_boxes": np.array([a.low_confidence_boxes for a in aggregates], float),
        "detections": np.array([a.detections for a in aggregates], float),
    }
    if member_boxes is not None:
        figures["ensemble"] = np.array([ensemble_box_disagreement(m) for m in member_boxes])
    ranked_by = "entropy" if choice.strategy in ("hybrid", "random", "coreset") else choice.strategy
    if ranked_by not in figures:
        raise ValueError(f"strategy {choice.strategy} needs the ensemble's detections")
    uncertainty = figures[ranked_by]
    queue = by_diversity(choice, uncertainty, embeddings, covered)
    return Round(batch.top_k(uncertainty, choice.k) if queue is None else queue, uncertainty, figures)


def cascade_round(choice: Choice, box_scores: Sequence[np.ndarray], fine_top: Sequence[np.ndarray], classes: int,
                  embeddings: np.ndarray, covered: np.ndarray, low_confidence: tuple[float, float]) -> Round:
    """A detect-then-classify pair's round. `box_scores`: each pool image's calibrated detector confidences (down
    to the decoder's floor); `fine_top`: the classifier's top probability on the crop of each box the pair
    answers with. An image is as uncertain as its most doubtful part: a box the detector hesitates on
    (`box`: 1 - |2s - 1|, 1 at s = 0.5) or a box it is sure of whose fine class the classifier hesitates on
    (`fine_class`, vision.loop.uncertainty.fine_class_uncertainty); `cascade` is the larger, what every
    strategy ranks by."""
    if choice.strategy not in CASCADE_STRATEGIES:
        raise ValueError(f"a cascade's round ranks by one figure: strategy {choice.strategy} is not one of "
                         f"{', '.join(CASCADE_STRATEGIES)}")
    box = box_margins(box_scores)
    fine = np.array([fine_class_uncertainty(top, classes) for top in fine_top])
    figures = {"box": box, "fine_class": fine, "cascade": np.maximum(box, fine),
               "low_confidence_boxes": np.array([float(box_uncertainty(s, low_confidence).low_confidence_boxes)
                                                 for s in box_scores]),
               "answered_boxes": np.array([float(len(top)) for top in fine_top])}
    uncertainty = figures["cascade"]
    queue = by_diversity(choice, uncertainty, embeddings, covered)
    return Round(batch.top_k(uncertainty, choice.k) if queue is None else queue, uncertainty, figures)


def sure_classifications(probabilities: np.ndarray, abstained: np.ndarray, queued: np.ndarray,
                         min_confidence: float, most: int) -> np.ndarray:
    """Pool images the classifier may label itself: not queued, not abstained, top probability at least
    `min_confidence`; the surest first, at most `most`."""
    top = probabilities.max(axis=1)
    eligible = (top >= min_confidence) & ~abstained
    eligible[queued] = False
    order = np.flatnonzero(eligible)
    return order[np.lexsort((order, -top[order]))][:most]


def sure_detections(box_scores: Sequence[np.ndarray], abstained: np.ndarray, queued: np.ndarray,
                    min_confidence: float, low_confidence: tuple[float, float], most: int) -> np.ndarray:
    """Pool images a detector may label itself: not queued, not abstained, at least one detection at
    `min_confidence` and none between the unsure band's lower bound and it (a hesitation anywhere in the image
    means a person should look); the surest (lowest mean box entropy) first, at most `most`."""
    chosen = []
    in_queue = set(queued.tolist())
    for index, scores in enumerate(box_scores):
        if abstained[index] or index in in_queue or not len(scores):
            continue
        if scores.max() >= min_confidence and not ((scores >= low_confidence[0]) & (scores < min_confidence)).any():
            chosen.append((float(binary_entropy(scores[scores >= min_confidence]).mean()), index))
    return np.array([index for _, index in sorted(chosen)[:most]], np.int64)

