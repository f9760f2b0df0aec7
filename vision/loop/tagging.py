"""The data loop's round for a tagger: the pool through the deployable tagger (the server's Artifact), each
image's uncertainty from every tag's own (per-tag binary entropy, and how close a tag sits to its threshold),
the queue chosen by the shared rankings and diversity strategies, and the images sure enough on every tag for the
model to label itself. Pure numpy over the scores, as vision.loop.choose is for the other tasks."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.spec.loop import TAG_STRATEGIES
from runtime.artifact import Artifact
from vision.data.labelstudio import Guess
from vision.loop import batch
from vision.loop.choose import Choice, Round, by_diversity
from vision.loop.scoring import Fed
from vision.loop.uncertainty import binary_entropy


@dataclass(frozen=True)
class Tagged:
    probabilities: np.ndarray
    """Calibrated, N x tags."""
    thresholds: np.ndarray
    """Each tag's threshold on the calibrated scale."""
    present: np.ndarray
    """N x tags: the server's decision per tag (before abstention)."""
    features: np.ndarray
    ood_scores: np.ndarray
    abstained: np.ndarray


def tag(artifact: Artifact, fed: Fed) -> Tagged:
    """Every pool image through the deployable tagger, as the server answers it."""
    thresholds = np.zeros(len(artifact.classes))
    parts = []
    for fed_batch in fed:
        answer = artifact.tag(fed_batch.tensor)
        thresholds = answer.thresholds
        parts.append((answer.probabilities, answer.present, answer.features, answer.ood_scores, answer.abstained))
    if not parts:
        tags = len(artifact.classes)
        return Tagged(np.zeros((0, tags)), thresholds, np.zeros((0, tags), bool), np.zeros((0, 0)), np.zeros(0),
                      np.zeros(0, bool))
    probabilities, present, features, ood, abstained = (np.concatenate(column)
                                                        for column in zip(*parts, strict=True))
    return Tagged(probabilities, np.asarray(thresholds, np.float64), present, features, ood, abstained)


def tag_figures(probabilities: np.ndarray, thresholds: np.ndarray, classes: list[str]) -> dict[str, np.ndarray]:
    """Per image: `entropy`, the mean over tags of each tag's binary entropy (a tag at 0.5 counts most);
    `least_confidence`, the least sure tag's min(p, 1 - p); `margin`, 1 minus the smallest distance of a tag to
    its threshold (the tag closest to flipping); and each tag's own entropy (`entropy.<tag>`)."""
    p = np.asarray(probabilities, np.float64).reshape(-1, len(classes))
    per_tag = binary_entropy(p)
    figures = {"entropy": per_tag.mean(axis=1), "least_confidence": np.minimum(p, 1 - p).max(axis=1),
               "margin": 1 - np.abs(p - thresholds[None, :]).min(axis=1)}
    figures.update({f"entropy.{name}": per_tag[:, i] for i, name in enumerate(classes)})
    return figures


def tagging_round(choice: Choice, tagged: Tagged, classes: list[str], embeddings: np.ndarray, covered: np.ndarray
                  ) -> Round:
    """Rank by the strategy's figure (entropy for the diversity strategies' ranking), or spread by diversity."""
    if choice.strategy not in TAG_STRATEGIES:
        raise ValueError(f"strategy {choice.strategy} is not built for taggers (use {', '.join(TAG_STRATEGIES)})")
    figures = tag_figures(tagged.probabilities, tagged.thresholds, classes)
    uncertainty = figures["entropy" if choice.strategy in ("hybrid", "random", "coreset") else choice.strategy]
    queue = by_diversity(choice, uncertainty, embeddings, covered)
    return Round(batch.top_k(uncertainty, choice.k) if queue is None else queue, uncertainty, figures)


def tag_guesses(tagged: Tagged, classes: list[str]) -> list[list[Guess]]:
    """Each image's tags the server gives (decided on the uncalibrated sigmoid, runtime.artifact.Artifact.tag),
    with their calibrated probabilities, in the tags' order."""
    return [[Guess(name, float(p[i])) for i, name in enumerate(classes) if given[i]]
            for p, given in zip(tagged.probabilities, tagged.present, strict=True)]


def sure_tags(tagged: Tagged, queued: np.ndarray, min_confidence: float, most: int) -> np.ndarray:
    """Pool images the tagger may label itself: not queued, not abstained, and every tag decided with at least
    `min_confidence` either way (present or absent); the surest (lowest mean tag entropy) first, at most `most`."""
    p = np.asarray(tagged.probabilities, np.float64)
    if not len(p):
        return np.zeros(0, np.int64)
    eligible = (np.maximum(p, 1 - p) >= min_confidence).all(axis=1) & ~tagged.abstained
    eligible[queued] = False
    order = np.flatnonzero(eligible)
    entropy = binary_entropy(p).mean(axis=1)
    return order[np.lexsort((order, entropy[order]))][:most].astype(np.int64)
