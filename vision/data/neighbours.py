"""Cosine-similarity neighbour search on unit vectors with faiss (exact below a size, IVF above)."""

from __future__ import annotations

import faiss
import numpy as np

EXACT_UP_TO = 50_000
"""Above this many vectors an inverted-file index (approximate, probes 16 lists) replaces the exact one."""


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


def pairs_above(vectors: np.ndarray, threshold: float) -> list[tuple[int, int, float]]:
    """Every pair (i, j), i < j, whose cosine similarity is >= threshold."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if len(vectors) == 0:
        return []
    faiss.omp_set_num_threads(max(1, faiss.omp_get_max_threads()))
    limits, similarity, neighbour = _index(vectors).range_search(vectors, float(threshold) - 1e-6)
    pairs = []
    for i in range(len(vectors)):
        for k in range(limits[i], limits[i + 1]):
            j = int(neighbour[k])
            if i < j:
                pairs.append((i, j, float(similarity[k])))
    return sorted(pairs)


def max_similarity_to(queries: np.ndarray, base: np.ndarray) -> np.ndarray:
    """For each query vector, its highest cosine similarity to any base vector."""
    if len(queries) == 0 or len(base) == 0:
        return np.zeros(len(queries), dtype=np.float32)
    similarity, _ = _index(np.ascontiguousarray(base, dtype=np.float32)).search(
        np.ascontiguousarray(queries, dtype=np.float32), 1)
    return similarity[:, 0]
