"""embed: one L2-normalised feature vector per ingested image, from an offline pretrained backbone.

Cleaning (near-duplicates) and pruning both work on these vectors, so they are
computed once and kept in the DVC cache: `embeddings.npy` (float32, one row
per manifest row, same order) and `index.csv` (path, sha256) to join on.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from compiler.fsutil import atomic_directory
from compiler.spec.data import Embedding
from stages._cli import StageContext, read_csv, run_stage, write_csv
from stages._dataset import to_tensor
from stages._imageio import load_rgb
from stages._pretrained import WEIGHTS, load_pretrained

BATCH = 16  # larger batches are slower per image on 2 CPU cores (cache-bound depthwise convolutions)


def embedding_model(embedder: str) -> torch.nn.Module:
    """The pretrained backbone without its classifier: it returns pooled features."""
    return load_pretrained(embedder, num_classes=0)


@torch.inference_mode()
def embed_images(paths: list[Path], model: torch.nn.Module, size_px: int, progress: bool = False) -> np.ndarray:
    """Unit-length float32 features, one row per path; cosine similarity is then a dot product."""
    torch.manual_seed(0)
    chunks = []
    batches = range(0, len(paths), BATCH)
    for start in tqdm(batches, desc="embed", unit="batch", disable=not progress):
        pixels = np.stack([load_rgb(path, size_px) for path in paths[start:start + BATCH]])
        features = model(to_tensor(pixels))
        chunks.append(torch.nn.functional.normalize(features, dim=1).numpy())
    width = model.num_features
    return np.concatenate(chunks).astype(np.float32) if chunks else np.zeros((0, width), dtype=np.float32)


def main(ctx: StageContext) -> None:
    settings = Embedding.model_validate(ctx.params["data"]["embedding"])
    size = settings.input_size_px or WEIGHTS[settings.embedder].input_size_px
    ingest_dir = ctx.dep(0)
    rows = read_csv(ingest_dir / "manifest.csv")
    vectors = embed_images([ingest_dir / row["path"] for row in rows], embedding_model(settings.embedder), size,
                           progress=True)
    with atomic_directory(ctx.out()) as out:
        np.save(out / "embeddings.npy", vectors, allow_pickle=False)
        write_csv(out / "index.csv", rows, ("path", "sha256"))
    print(f"embed: {len(rows)} images -> {vectors.shape[1]}-d vectors ({settings.embedder} at {size} px)")


def load_embeddings(embed_dir: Path) -> tuple[np.ndarray, list[str]]:
    """The vectors and the image path of each row."""
    paths = [row["path"] for row in read_csv(embed_dir / "index.csv")]
    return np.load(embed_dir / "embeddings.npy", allow_pickle=False), paths


if __name__ == "__main__":
    run_stage("embed", main)
