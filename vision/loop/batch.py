"""Which pool images one round sends to people: by uncertainty, by diversity, or by both.

A round of the most uncertain images alone tends to be 100 frames of the same traffic light; diversity-aware
selection spreads the round over what the labelled set does not yet cover. Every selector returns pool
indices in the order they were picked (the queue's order) and is deterministic for its inputs and seed.
Embeddings are unit vectors (cosine geometry), as the embed stage writes them.
"""

from __future__ import annotations

import math

import numpy as np

from vision.data.neighbours import max_similarity_to


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """The k highest scores, highest first; ties broken by pool order."""
    order = np.lexsort((np.arange(len(scores)), -np.asarray(scores, np.float64)))
    return order[:min(k, len(scores))].astype(np.int64)


def random_batch(n: int, k: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).permutation(n)[:min(k, n)].astype(np.int64)


def coreset(pool: np.ndarray, k: int, covered: np.ndarray | None = None) -> np.ndarray:
    """Greedy k-center (Sener & Savarese 2018): repeatedly take the pool image farthest (cosine distance) from
    everything labelled or already taken. Without a labelled set the first pick is the most central image."""
    pool = np.asarray(pool, np.float32)
    k = min(k, len(pool))
    if k == 0:
        return np.zeros(0, np.int64)
    if covered is not None and len(covered):
        chosen: list[int] = []
        distance = 1.0 - max_similarity_to(pool, np.asarray(covered, np.float32)).astype(np.float64)
    else:
        chosen = [int(np.argmax(pool @ pool.mean(axis=0)))]
        distance = 1.0 - (pool @ pool[chosen[0]]).astype(np.float64)
    return _extend(pool, distance, chosen, k)


def _extend(pool: np.ndarray, distance: np.ndarray, chosen: list[int], k: int) -> np.ndarray:
    distance = distance.copy()
    distance[chosen] = -np.inf
    while len(chosen) < k:
        pick = int(np.argmax(distance))
        chosen.append(pick)
        distance = np.minimum(distance, 1.0 - pool @ pool[pick])
        distance[chosen] = -np.inf
    return np.asarray(chosen, np.int64)


def hybrid(uncertainty: np.ndarray, pool: np.ndarray, k: int, pool_factor: float,
           covered: np.ndarray | None = None) -> np.ndarray:
    """Uncertainty first, then diversity: the ceil(k x pool_factor) most uncertain images, and among them the
    k-center coreset (covering the labelled set too), so a round is hard and varied at once. A simple form of
    the ranked-batch/cluster-margin family (Citovsky et al. 2021)."""
    shortlist = top_k(uncertainty, math.ceil(k * pool_factor))
    return shortlist[coreset(np.asarray(pool)[shortlist], k, covered)]


def badge(probabilities: np.ndarray, features: np.ndarray, k: int, seed: int) -> np.ndarray:
    """BADGE (Ash et al. 2020): k-means++ seeding over gradient embeddings, the last layer's loss gradient with
    the model's own prediction as the label, g = (p - onehot(argmax p)) (x) f. Large gradients are uncertain
    images, spread-out gradients are diverse ones. The distances are computed from the two factors
    (|g_i - g_j|^2 = |a_i|^2 |f_i|^2 + |a_j|^2 |f_j|^2 - 2 (a_i . a_j)(f_i . f_j)), never materialising the
    N x (C x D) embeddings."""
    p = np.asarray(probabilities, np.float64)
    f = np.asarray(features, np.float64)
    k = min(k, len(p))
    if k == 0:
        return np.zeros(0, np.int64)
    a = p.copy()
    a[np.arange(len(p)), p.argmax(axis=1)] -= 1.0
    norms = (a * a).sum(axis=1) * (f * f).sum(axis=1)
    first = int(np.argmax(norms))  # the reference implementation starts at the largest gradient
    chosen = [first]
    distance = _gradient_distance(a, f, norms, first)
    rng = np.random.default_rng(seed)
    while len(chosen) < k:
        weights = np.clip(distance, 0.0, None)
        weights[chosen] = 0.0
        total = weights.sum()
        if total <= 0:  # every remaining image duplicates a chosen one: fall back to pool order
            rest = [i for i in range(len(p)) if i not in set(chosen)]
            chosen.extend(rest[:k - len(chosen)])
            break
        pick = int(rng.choice(len(p), p=weights / total))
        chosen.append(pick)
        distance = np.minimum(distance, _gradient_distance(a, f, norms, pick))
    return np.asarray(chosen, np.int64)


def _gradient_distance(a: np.ndarray, f: np.ndarray, norms: np.ndarray, centre: int) -> np.ndarray:
    return norms + norms[centre] - 2.0 * (a @ a[centre]) * (f @ f[centre])
