"""Image embeddings from an offline pretrained backbone: what near-duplicate removal and data pruning compare.

Cosine similarity of two images is the dot product of their rows (every vector has unit length).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from core.progress import Progress
from core.fsutil import read_csv
from vision.data.dataset import to_tensor
from vision.data.imageio import load_rgb
from vision.training.pretrained import load_pretrained

BATCH = 16  # larger batches are slower per image on 2 CPU cores (cache-bound depthwise convolutions)


def embedding_model(embedder: str) -> torch.nn.Module:
    """The pretrained backbone without its classifier: it returns pooled features."""
    return load_pretrained(embedder, num_classes=0)


@torch.inference_mode()
def embed_images(paths: list[Path], model: torch.nn.Module, size_px: int, progress: bool = False) -> np.ndarray:
    """Unit-length float32 features, one row per path; cosine similarity is then a dot product."""
    torch.manual_seed(0)
    chunks = []
    with Progress("embed", len(paths), unit="image", enabled=progress) as shown:
        for start in range(0, len(paths), BATCH):
            pixels = np.stack([load_rgb(path, size_px) for path in paths[start:start + BATCH]])
            features = model(to_tensor(pixels))
            chunks.append(torch.nn.functional.normalize(features, dim=1).numpy())
            shown.update(len(pixels))
    width = model.num_features
    return np.concatenate(chunks).astype(np.float32) if chunks else np.zeros((0, width), dtype=np.float32)


def load_embeddings(embed_dir: Path) -> tuple[np.ndarray, list[str]]:
    """The vectors and the image path of each row."""
    paths = [row["path"] for row in read_csv(embed_dir / "index.csv")]
    return np.load(embed_dir / "embeddings.npy", allow_pickle=False), paths

