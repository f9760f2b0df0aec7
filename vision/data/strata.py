"""The stratum of an image that carries several labels (a detector's boxes, a tagger's tags), so that a split
stratified on one label per image spreads every label over train, validation and test.

An image's stratum is its rarest label (by how often each label occurs in the whole set), NEGATIVE when it
carries none; strata too small to be split three ways are pooled as MIXED, and that pool, if still too small,
joins the largest stratum: a split must never fail on how labels happen to combine in images.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping

NEGATIVE = "_none"
"""The stratum of an image without labels (no class name can start with '_')."""
MIXED = "_mixed"
"""The stratum of images whose own stratum is too small to split."""
MIN_STRATUM_IMAGES = 3


def rarest_label_strata(labels_of: Mapping[str, Iterable[str]], counts: Mapping[str, int]) -> dict[str, str]:
    """Image -> its stratum; `labels_of` gives each image's labels (empty: a negative), `counts` how often each
    label occurs in the whole set (a box or a tag at a time)."""
    def stratum(labels: Iterable[str]) -> str:
        distinct = sorted(set(labels))
        return min(distinct, key=lambda label: (counts.get(label, 0), label)) if distinct else NEGATIVE

    strata = {image: stratum(labels) for image, labels in labels_of.items()}
    sizes = Counter(strata.values())
    strata = {image: s if sizes[s] >= MIN_STRATUM_IMAGES else MIXED for image, s in strata.items()}
    sizes = Counter(strata.values())
    if 0 < sizes[MIXED] < MIN_STRATUM_IMAGES and len(sizes) > 1:
        largest = max((s for s in sizes if s != MIXED), key=lambda s: (sizes[s], s))
        strata = {image: largest if s == MIXED else s for image, s in strata.items()}
    return strata
