"""Data-pruning selectors: choose exactly k of n embedding rows of one class.

Each selector is small and deterministic for a seed; `SELECTORS` is the
registry the prune stage and the benchmark use. Every selector works in float64 on
the stored, snapped embeddings (vision.data.vectors), where similarities are exact:
k-means, k-center and the proxy model then decide the same on every CPU make
(faiss's float32 k-means sums in a CPU-specific order, so a near-tie could fall
either way). Scores are rounded before ranking and ties go to the earlier row.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

PROTOTYPICAL_BELOW = 100
"""cluster_balanced keeps the images nearest their cluster centre when fewer than this many are kept per
class, and the farthest ones otherwise: with little data easy (prototypical) examples teach more, with
plenty the hard ones do (Sorscher et al. 2022, 'Beyond neural scaling laws')."""

Selector = Callable[[np.ndarray, int, int], np.ndarray]

DECIMALS = 9
"""Scores are ranked after rounding to this many decimals: float64 noise (about 1e-16) cannot reorder them."""


def random_selection(vectors: np.ndarray, k: int, seed: int) -> np.ndarray:
    return np.sort(np.random.default_rng(seed).choice(len(vectors), size=k, replace=False))


def _kmeans(vectors: np.ndarray, clusters: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(cluster of each row, squared L2 distance to its centre), scikit-learn's Lloyd k-means in float64."""
    from sklearn.cluster import KMeans

    x = np.asarray(vectors, dtype=np.float64)
    clusters = min(clusters, len(np.unique(x, axis=0)))  # never more centres than distinct points
    kmeans = KMeans(clusters, init="k-means++", n_init=1, max_iter=20, random_state=seed, algorithm="lloyd").fit(x)
    assignment = kmeans.labels_.astype(np.int64)
    distance = np.round(((x - kmeans.cluster_centers_[assignment]) ** 2).sum(axis=1), DECIMALS)
    return assignment, distance


def _cluster_count(n: int, k: int) -> int:
    return max(1, min(k, round(np.sqrt(n))))


def _balanced_quotas(sizes: np.ndarray, k: int) -> np.ndarray:
    """Spread k picks as evenly as possible over clusters, never more than a cluster holds."""
    quotas = np.zeros_like(sizes)
    while quotas.sum() < k:
        open_clusters = np.flatnonzero(quotas < sizes)
        share = max(1, (k - int(quotas.sum())) // len(open_clusters))
        for c in open_clusters:
            if quotas.sum() == k:
                break
            quotas[c] = min(sizes[c], quotas[c] + share)
    return quotas


def cluster_balanced(vectors: np.ndarray, k: int, seed: int) -> np.ndarray:
    assignment, distance = _kmeans(vectors, _cluster_count(len(vectors), k), seed)
    clusters = np.unique(assignment)
    quotas = _balanced_quotas(np.array([np.sum(assignment == c) for c in clusters]), k)
    nearest_first = k < PROTOTYPICAL_BELOW
    chosen = []
    for cluster, quota in zip(clusters, quotas, strict=True):
        members = np.flatnonzero(assignment == cluster)
        order = np.argsort(distance[members] if nearest_first else -distance[members], kind="stable")
        chosen.extend(members[order[:quota]])
    return np.sort(np.array(chosen, dtype=np.int64))


def kcenter_greedy(vectors: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Greedy k-center coreset: start at the most central image, then keep adding the least covered one."""
    vectors = np.asarray(vectors, dtype=np.float64)
    centre = vectors.mean(axis=0)
    chosen = [int(np.argmax(np.round(vectors @ centre, DECIMALS)))]
    nearest = 1.0 - vectors @ vectors[chosen[0]]
    for _ in range(k - 1):
        pick = int(np.argmax(nearest))
        chosen.append(pick)
        nearest = np.minimum(nearest, 1.0 - vectors @ vectors[pick])
    return np.sort(np.array(chosen, dtype=np.int64))


def semdedup(vectors: np.ndarray, k: int, seed: int) -> np.ndarray:
    """SemDeDup: within each k-means cluster, drop the most redundant image (highest similarity to another
    kept one) until k remain; the threshold-free form hits the budget exactly."""
    vectors = np.asarray(vectors, dtype=np.float64)
    assignment, _ = _kmeans(vectors, _cluster_count(len(vectors), k), seed)
    redundancy = np.full(len(vectors), -np.inf)
    similarity_of: dict[int, np.ndarray] = {}
    for cluster in np.unique(assignment):
        members = np.flatnonzero(assignment == cluster)
        similarity = vectors[members] @ vectors[members].T
        np.fill_diagonal(similarity, -np.inf)
        similarity_of[int(cluster)] = similarity
        if len(members) > 1:
            redundancy[members] = similarity.max(axis=1)
    alive = np.ones(len(vectors), dtype=bool)
    for _ in range(len(vectors) - k):
        victim = int(np.argmax(np.where(alive, redundancy, -np.inf)))
        alive[victim] = False
        cluster = int(assignment[victim])
        members = np.flatnonzero(assignment == cluster)
        similarity = similarity_of[cluster]
        similarity[:, np.searchsorted(members, victim)] = -np.inf
        live = alive[members]
        redundancy[members[live]] = similarity[live].max(axis=1) if live.sum() > 1 else -np.inf
    return np.flatnonzero(alive)


def typicality(vectors: np.ndarray, neighbours: int = 20) -> np.ndarray:
    """How typical each row is among its class: the inverse mean cosine distance to its nearest neighbours
    (TypiClust's density, Hacohen et al. 2022)."""
    if len(vectors) < 2:
        return np.ones(len(vectors))
    vectors = np.asarray(vectors, dtype=np.float64)
    distance = 1.0 - vectors @ vectors.T
    np.fill_diagonal(distance, np.inf)
    nearest = np.sort(distance, axis=1)[:, :min(neighbours, len(vectors) - 1)]
    return np.round(1.0 / (nearest.mean(axis=1) + 1e-6), DECIMALS)


def proxy_agreement(vectors: np.ndarray, labels: list[str], seed: int) -> np.ndarray:
    """Per row, the out-of-fold probability a linear proxy model (logistic regression on the embeddings, 5
    folds) gives the row's own label minus the best other class: below 0, the proxy would call it something
    else (an ambiguous, atypical or mislabelled image)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    names = sorted(set(labels))
    y = np.array([names.index(label) for label in labels])
    folds = min(5, int(np.bincount(y).min()))
    if len(names) < 2 or folds < 2:
        return np.ones(len(labels))
    vectors = np.asarray(vectors, dtype=np.float64)
    probabilities = cross_val_predict(LogisticRegression(max_iter=2000, C=1.0), vectors, y, method="predict_proba",
                                      cv=StratifiedKFold(folds, shuffle=True, random_state=seed))
    own = probabilities[np.arange(len(y)), y]
    probabilities[np.arange(len(y)), y] = -1.0
    return np.round(own - probabilities.max(axis=1), 6)  # 1e-6: far above the solver's float noise


def hybrid_selection(vectors: np.ndarray, k: int, seed: int, agreement: np.ndarray) -> np.ndarray:
    """Diversity from clusters, the pick from uncertainty: k k-means clusters of the class (one per kept image),
    and in each the image the proxy model is least sure of among those it still gets right (a cluster it gets
    wrong throughout is skipped, its pick going to the hardest consistent image elsewhere). The clusters spread
    the budget over the class; within a cluster the hardest consistent image carries the most information, and
    the proxy's disagreement keeps out the ambiguous and
    mislabelled images that "hardest" alone would pick. Measured on digits (benchmarks/data_pruning.py)
    against the cluster's most typical image (TypiClust) and its medoid, which both lose to random at 10%."""
    assignment, _ = _kmeans(vectors, k, seed)
    chosen = []
    for cluster in np.unique(assignment):
        members = np.flatnonzero(assignment == cluster)
        agreed = members[agreement[members] > 0]
        if len(agreed):  # a cluster the proxy disagrees with throughout is a group of doubtful labels: skipped
            chosen.append(int(agreed[np.argmin(agreement[agreed])]))
    taken = set(chosen)  # fill up (skipped or empty clusters): the hardest consistent rest, then the most typical
    consistent = [int(i) for i in np.argsort(agreement, kind="stable") if agreement[i] > 0 and int(i) not in taken]
    typical = [int(i) for i in np.argsort(-typicality(vectors), kind="stable") if int(i) not in taken]
    for i in consistent + typical:
        if len(chosen) >= k:
            break
        if i not in taken:
            chosen.append(i)
            taken.add(i)
    return np.sort(np.array(chosen[:k], dtype=np.int64))


SELECTORS: dict[str, Selector] = {
    "random": random_selection,
    "cluster_balanced": cluster_balanced,
    "kcenter": kcenter_greedy,
    "semdedup": semdedup,
}


def budget_count(n: int, budget: float) -> int:
    """Images kept of a class of n: round(budget * n), at least one, at most n."""
    return min(n, max(1, round(budget * n))) if n else 0


def select_per_class(vectors: np.ndarray, labels: list[str], budget: float, method: str, seed: int) -> np.ndarray:
    """Boolean mask of kept rows: exactly budget_count(n_c) rows of every class c."""
    keep = np.zeros(len(labels), dtype=bool)
    label_array = np.array(labels)
    agreement = proxy_agreement(vectors, labels, seed) if method == "hybrid" and budget < 1.0 else None
    for label in sorted(set(labels)):
        rows = np.flatnonzero(label_array == label)
        k = budget_count(len(rows), budget)
        if k == len(rows):
            picked = rows
        elif agreement is not None:
            picked = rows[hybrid_selection(vectors[rows], k, seed, agreement[rows])]
        else:
            picked = rows[SELECTORS[method](vectors[rows], k, seed)]
        keep[picked] = True
    return keep
