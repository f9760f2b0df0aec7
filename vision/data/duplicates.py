"""Which similarity makes two images duplicates on this data: calibrated from the data itself.

`auto` compares two distributions. Copies: each sampled image against its lightly altered copies (re-encoded,
rescaled, trimmed; vision.data.alterations), the similarity a real duplicate has here. Neighbours: each image
against its most similar other image, the similarity distinct images reach here. The neighbours' ceiling is
the upper whisker of their box plot (the highest value within Tukey's fence, third quartile + 1.5 interquartile
ranges): the quartiles barely move when a fair share of the images do have a real duplicate, so those stand out
above the fence instead of passing for the neighbours' range, while every ordinary neighbour counts. An
alteration whose copies stay above that ceiling (their 5th percentile over it) can be told apart on this data,
and the threshold is the lowest such 5th percentile; where no alteration can (textures of one material under an
ImageNet embedder), the embedder cannot tell duplicates from neighbours and only identical embeddings count as
duplicates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vision.data.neighbours import NOISE_MARGIN, max_similarity_to, nearest_other, pairs_above, stable_cut

CALIBRATION_SAMPLE = 64
"""Images whose altered copies are embedded: the first ones in content-hash order (the same on every machine)."""
COPY_QUANTILE = 0.05
"""Share of an alteration's copies allowed to fall below the threshold."""
FENCE_IQRS = 1.5
"""Tukey's fence: this many interquartile ranges above the third quartile."""


@dataclass(frozen=True)
class DuplicateRule:
    """What clean removed and split checks for leakage: pairs at or above `threshold`, or (threshold None) pairs
    whose stored embeddings are identical."""

    mode: str  # "auto", "auto-exact" or "fixed"
    threshold: float | None
    reason: str

    @property
    def search_threshold(self) -> float:
        """The similarity a candidate search must reach to find every duplicate under this rule."""
        return self.threshold if self.threshold is not None else 1.0 - 1e-3

    def as_dict(self) -> dict[str, object]:
        return {"mode": self.mode, "threshold": self.threshold, "reason": self.reason}

    def decision(self) -> dict[str, object]:
        """What later stages read (split, the loop's select): the decision without the measured figures behind it,
        so a figure that moved in its last digit re-runs nothing."""
        return {"mode": self.mode, "threshold": self.threshold}

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> DuplicateRule:
        threshold = data["threshold"]
        return cls(str(data["mode"]), None if threshold is None else float(threshold), str(data.get("reason", "")))


@dataclass(frozen=True)
class Calibration:
    """The two distributions `auto` compares and what it concluded."""

    copies: dict[str, np.ndarray]
    """Per alteration, each sampled image's similarity to its altered copy."""
    neighbours: np.ndarray
    """Each image's similarity to its most similar other image (identical content excluded)."""
    separable: dict[str, bool]
    rule: DuplicateRule


def _quantile(values: np.ndarray, share: float) -> float:
    # method "lower"/"higher" returns a measured value, not an interpolation between two
    return float(np.quantile(values, share, method="lower" if share < 0.5 else "higher"))


def neighbour_ceiling(neighbours: np.ndarray) -> float:
    """The upper whisker of the nearest-neighbour similarities: the highest one within Tukey's upper fence (-1
    when there are none)."""
    if not len(neighbours):
        return -1.0
    q1, q3 = _quantile(neighbours, 0.25), _quantile(neighbours, 0.75)
    fence = q3 + FENCE_IQRS * (q3 - q1)
    return float(np.max(neighbours[neighbours <= fence]))


def calibrate(copies: dict[str, np.ndarray], neighbours: np.ndarray) -> Calibration:
    """The `auto` rule for this data (see the module docstring), before `settle` moves it off measured pairs."""
    ceiling = neighbour_ceiling(neighbours)
    floors = {name: _quantile(values, COPY_QUANTILE) for name, values in copies.items() if len(values)}
    separable = {name: floor > ceiling for name, floor in floors.items()}
    told_apart = [floors[name] for name, ok in separable.items() if ok]
    figures = (f"nearest other image up to {ceiling:.4f} (upper whisker); altered copies "
               f"{COPY_QUANTILE:.0%} at " + ", ".join(f"{name} {floor:.4f}" for name, floor in floors.items()))
    if not told_apart:
        rule = DuplicateRule("auto-exact", None, "the embedder cannot tell duplicates from neighbours on this data "
                             f"({figures}): only images with identical embeddings count as duplicates")
    else:
        kinds = ", ".join(name for name, ok in separable.items() if ok)
        missed = ", ".join(name for name, ok in separable.items() if not ok)
        rule = DuplicateRule("auto", min(told_apart), f"{kinds} copies stay above distinct neighbours ({figures})"
                             + (f"; {missed} copies cannot be told from neighbours here" if missed else ""))
    return Calibration(copies, neighbours, separable, rule)


def settle(rule: DuplicateRule, vectors: np.ndarray) -> tuple[DuplicateRule, list[tuple[int, int, float]]]:
    """The rule with its threshold moved clear of every measured pair (stable_cut), and the duplicate pairs
    (i < j, sorted) it finds among `vectors`."""
    if rule.threshold is None:
        return rule, duplicate_pairs(vectors, rule)
    near = pairs_above(vectors, rule.threshold - NOISE_MARGIN)
    cut = stable_cut(np.array([s for _, _, s in near]), rule.threshold)
    reason = rule.reason + (f"; moved from {rule.threshold:.6f} to {cut:.4f}, clear of every measured pair"
                            if cut != rule.threshold else "")
    return DuplicateRule(rule.mode, cut, reason), [(i, j, s) for i, j, s in near if s >= cut]


def duplicate_pairs(vectors: np.ndarray, rule: DuplicateRule) -> list[tuple[int, int, float]]:
    """Pairs (i < j, sorted) that are duplicates under `rule` as it stands."""
    pairs = pairs_above(vectors, rule.search_threshold)
    if rule.threshold is None:
        return [(i, j, s) for i, j, s in pairs if np.array_equal(vectors[i], vectors[j])]
    return pairs


def fixed_rule(threshold: float) -> DuplicateRule:
    return DuplicateRule("fixed", threshold, f"data.cleaning.near_duplicate_cosine: {threshold:g}")


def duplicated_in(queries: np.ndarray, base: np.ndarray, rule: DuplicateRule) -> np.ndarray:
    """Which query rows have a duplicate among the base rows under `rule` (split's leakage check)."""
    if rule.threshold is not None:
        return max_similarity_to(queries, base) >= rule.threshold
    stored = {row.tobytes() for row in np.ascontiguousarray(base)}
    return np.array([row.tobytes() in stored for row in np.ascontiguousarray(queries)], dtype=bool)


def calibration_sample(hashes: list[str], size: int = CALIBRATION_SAMPLE) -> list[int]:
    """Row indices of the images whose altered copies calibrate `auto`: content-hash order, so adding images
    elsewhere moves few of them."""
    return sorted(sorted(range(len(hashes)), key=lambda i: (hashes[i], i))[:size])


def choose_rule(setting: float | str, copies: dict[str, np.ndarray], vectors: np.ndarray, hashes: list[str]
                ) -> tuple[DuplicateRule, Calibration, list[tuple[int, int, float]]]:
    """The settled rule for `data.cleaning.near_duplicate_cosine` (`auto` or a number), the calibration measured on
    this data (for a fixed number too: the report shows how it compares) and the duplicate pairs."""
    calibration = calibrate(copies, nearest_other(vectors, np.array(hashes)))
    proposed = calibration.rule if setting == "auto" else fixed_rule(float(setting))
    rule, pairs = settle(proposed, vectors)
    return rule, calibration, pairs
