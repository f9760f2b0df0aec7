"""embed: one unit-length feature vector per ingested image, from an offline pretrained backbone.

Cleaning (near-duplicates) and pruning both work on these vectors, so they are computed once and kept in the
DVC cache: `embeddings.npy` (float32 at the fixed precision of vision.data.vectors, one row per manifest row, same
order), `index.csv` (path, sha256) to join on, and `copies.json`: for a sample of images, the similarity of each
to its lightly altered copies, which calibrates what a duplicate looks like on this data (vision.data.duplicates),
and `embedder.json`: the backbone and input size, which later embeddings of new images (the loop's pool) follow.
"""

from __future__ import annotations

import numpy as np

from core.fsutil import atomic_directory, read_csv, write_csv, write_json
from core.spec.data import Embedding
from stages.runtime import StageContext, run_stage
from vision.data.duplicates import calibration_sample
from vision.data.embedding import altered_copies, embed_images, embedding_model
from vision.data.vectors import EMBEDDER_FILE, row_similarity
from vision.training.pretrained import WEIGHTS


def main(ctx: StageContext) -> None:
    embedding: Embedding = ctx.spec("data.embedding")
    size = embedding.input_size_px or WEIGHTS[embedding.embedder].input_size_px
    ingest_dir = ctx.input("images")
    rows = read_csv(ctx.input("manifest"))
    model = embedding_model(embedding.embedder)
    vectors = embed_images([ingest_dir / row["path"] for row in rows], model, size, progress=True)
    sample = calibration_sample([row["sha256"] for row in rows])
    copies = altered_copies([ingest_dir / rows[i]["path"] for i in sample], model, size, progress=True)
    with atomic_directory(ctx.output("embeddings")) as out:
        np.save(out / "embeddings.npy", vectors, allow_pickle=False)
        write_csv(out / "index.csv", rows, ("path", "sha256"))
        write_json(out / EMBEDDER_FILE, {"embedder": embedding.embedder, "input_size_px": size})
        write_json(out / "copies.json", {"paths": [rows[i]["path"] for i in sample],
                                         "similarity": {name: row_similarity(vectors[sample], altered).tolist()
                                                        for name, altered in copies.items()}})
    print(f"embed: {len(rows)} images -> {vectors.shape[1]}-d vectors ({embedding.embedder} at {size} px); "
          f"{len(sample)} images x {len(copies)} altered copies for duplicate calibration")


if __name__ == "__main__":
    from core.contracts.shared.embed import CONTRACT

    run_stage(CONTRACT, main)
