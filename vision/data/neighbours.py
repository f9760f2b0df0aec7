"""Neighbour search on snapped unit vectors: faiss finds candidates, exact float64 arithmetic decides.

faiss computes in float32 with SIMD kernels whose summation order depends on the CPU, so its similarities differ
between CPU makes in the last bits. It is used only to find candidates, with a slack far wider than that noise;
every similarity a decision reads is then recomputed exactly from the stored vectors (vision.data.vectors).
"""

from __future__ import annotations

import faiss
import numpy as np

from vision.data.vectors import row_similarity

EXACT_UP_TO = 50_000
"""Above this many vectors an inverted-file index (approximate, probes 16 lists) replaces the exact one."""
CANDIDATE_SLACK = 1e-3
"""How far below a threshold faiss's float32 candidates reach, so no pair at or above it is missed."""
NOISE_MARGIN = 1e-4
"""No threshold is left closer than this to a measured similarity (see stable_cut): float noise between CPUs is
about 1e-6, so a pair cannot cross the threshold on another machine."""


def _index(vectors: np.ndarray, seed: int = 0) -> faiss.Index:
    dim = vectors.shape[1]
    if len(vectors) <= EXACT_UP_TO:
        index = faiss.IndexFlatIP(dim)
    else:
        lists = int(4 * np.sqrt(len(vectors)))
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, lists, faiss.METRIC_INNER_PRODUCT)
        index.cp.seed = seed
        index.train(vectors)
        index.nprobe = 16
    index.add(vectors)
    return index


def _float32(vectors: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(vectors, dtype=np.float32)


def pairs_above(vectors: np.ndarray, threshold: float) -> list[tuple[int, int, float]]:
    """Every pair (i, j), i < j, whose exact similarity is >= threshold, sorted by (i, j)."""
    if len(vectors) == 0:
        return []
    faiss.omp_set_num_threads(max(1, faiss.omp_get_max_threads()))
    limits, _, neighbour = _index(_float32(vectors)).range_search(_float32(vectors), float(threshold) - CANDIDATE_SLACK)
    first = np.repeat(np.arange(len(vectors)), np.diff(limits).astype(np.int64))
    second = neighbour.astype(np.int64)
    upper = first < second
    first, second = first[upper], second[upper]
    exact = row_similarity(vectors[first], vectors[second])
    chosen = exact >= threshold
    return sorted(zip(first[chosen].tolist(), second[chosen].tolist(), exact[chosen].tolist(), strict=True))


def nearest_other(vectors: np.ndarray, distinct: np.ndarray | None = None, candidates: int = 8) -> np.ndarray:
    """Each row's exact similarity to its most similar other row (-1 for a lone row). With `distinct` (one key
    per row, e.g. the content hash), rows with the same key as the query are not counted as neighbours."""
    if len(vectors) < 2:
        return np.full(len(vectors), -1.0)
    k = min(len(vectors), candidates + 1)
    _, neighbour = _index(_float32(vectors)).search(_float32(vectors), k)
    best = np.full(len(vectors), -1.0)
    for column in range(k):
        other = neighbour[:, column]
        valid = (other >= 0) & (other != np.arange(len(vectors)))
        if distinct is not None:
            valid &= distinct[np.clip(other, 0, None)] != distinct
        exact = np.where(valid, row_similarity(vectors, vectors[np.clip(other, 0, None)]), -1.0)
        best = np.maximum(best, exact)
    return best


def max_similarity_to(queries: np.ndarray, base: np.ndarray, candidates: int = 4) -> np.ndarray:
    """For each query vector, its exact highest similarity to any base vector."""
    if len(queries) == 0 or len(base) == 0:
        return np.zeros(len(queries), dtype=np.float64)
    k = min(len(base), candidates)
    _, neighbour = _index(_float32(base)).search(_float32(queries), k)
    exact = np.stack([row_similarity(queries, base[np.clip(neighbour[:, c], 0, None)]) for c in range(k)], axis=1)
    return np.where(neighbour >= 0, exact, -np.inf).max(axis=1)


def stable_cut(values: np.ndarray, threshold: float, margin: float = NOISE_MARGIN) -> float:
    """The lowest cut >= threshold that lies at least `margin` from every value: a value just at a threshold is
    decided by float noise, so the cut moves up past it (keeping data, never removing more). The cut is rounded
    up to 4 decimals first, so a threshold computed from the data does not carry its float noise either."""
    cut = float(np.ceil(round(threshold, 9) * 1e4) / 1e4)
    for value in np.sort(np.asarray(values, dtype=np.float64)):
        if value <= cut - margin:
            continue
        if value >= cut + margin:
            break
        cut = float(value) + margin
    return cut
