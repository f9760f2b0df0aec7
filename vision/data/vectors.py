"""Embedding vectors at a fixed precision: what every data-stage decision compares.

Float results differ between x86 CPUs of different makes in the last bits (another SIMD width, another summation
order); a decision that hinges on those bits (is this pair a duplicate? which cluster is nearer?) would then make
another data set. So the embed stage stores every element as a multiple of `GRID`, readers snap again (a reader
sees the stored values whatever noise below half a step they picked up), and similarities are computed from the
snapped values in float64, where they are exact: a product of two 17-bit mantissas fits in 34 bits, and the sum of
a few thousand such multiples of 2^-32, each below 1 in size, never leaves float64's 53 bits. Every CPU therefore
computes the same similarity of the same stored vectors, bit for bit, in any summation order.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from core.fsutil import read_csv

GRID = 2.0 ** -16
"""Step of the stored elements (about 1.5e-5): far below what separates two images, far above float noise."""


def snap(vectors: np.ndarray) -> np.ndarray:
    """The vectors rounded to multiples of GRID, as float32 (every such value is exactly representable)."""
    return (np.round(np.asarray(vectors, dtype=np.float64) / GRID) * GRID).astype(np.float32)


def similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Exact dot products of snapped rows of `a` with snapped rows of `b` (cosine up to the snapping)."""
    return np.asarray(a, dtype=np.float64) @ np.asarray(b, dtype=np.float64).T


def row_similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Exact dot product of each row of `a` with the same row of `b`."""
    return np.einsum("ij,ij->i", np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64))


def load_embeddings(embed_dir: Path) -> tuple[np.ndarray, list[str]]:
    """The stored vectors (snapped again on reading) and the image path of each row."""
    paths = [row["path"] for row in read_csv(embed_dir / "index.csv")]
    return snap(np.load(embed_dir / "embeddings.npy", allow_pickle=False)), paths


EMBEDDER_FILE = "embedder.json"
"""Beside the vectors: the backbone and input size that made them, so images embedded later (a data loop's
pool, perhaps by another project reading these vectors) are embedded the same way and compare."""


def stored_embedder(embed_dir: Path) -> tuple[str, int] | None:
    """(embedder, input size in px) the vectors in `embed_dir` were made with; None for vectors stored before
    the embed stage recorded it."""
    import json

    path = embed_dir / EMBEDDER_FILE
    if not path.is_file():
        return None
    record = json.loads(path.read_text(encoding="utf-8"))
    return str(record["embedder"]), int(record["input_size_px"])

