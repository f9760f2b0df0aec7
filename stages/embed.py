"""embed: one L2-normalised feature vector per ingested image, from an offline pretrained backbone.

Cleaning (near-duplicates) and pruning both work on these vectors, so they are
computed once and kept in the DVC cache: `embeddings.npy` (float32, one row
per manifest row, same order) and `index.csv` (path, sha256) to join on.
"""

from __future__ import annotations

import numpy as np

from core.fsutil import atomic_directory, read_csv, write_csv
from core.spec.data import Embedding
from stages.runtime import StageContext, run_stage
from vision.data.embedding import embed_images, embedding_model
from vision.training.pretrained import WEIGHTS


def main(ctx: StageContext) -> None:
    embedding: Embedding = ctx.spec("data.embedding")
    size = embedding.input_size_px or WEIGHTS[embedding.embedder].input_size_px
    ingest_dir = ctx.input("images")
    rows = read_csv(ctx.input("manifest"))
    vectors = embed_images([ingest_dir / row["path"] for row in rows], embedding_model(embedding.embedder), size,
                           progress=True)
    with atomic_directory(ctx.output("embeddings")) as out:
        np.save(out / "embeddings.npy", vectors, allow_pickle=False)
        write_csv(out / "index.csv", rows, ("path", "sha256"))
    print(f"embed: {len(rows)} images -> {vectors.shape[1]}-d vectors ({embedding.embedder} at {size} px)")


if __name__ == "__main__":
    run_stage("embed", main)
