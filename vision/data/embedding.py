"""Image embeddings from an offline pretrained backbone: what near-duplicate removal and data pruning compare.

Every vector has unit length before it is snapped to the fixed precision of vision.data.vectors; the dot
product of two rows is their cosine similarity up to that snapping.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from core.progress import Progress
from vision.data.alterations import ALTERATIONS
from vision.data.dataset import to_tensor
from vision.data.imageio import load_rgb
from vision.data.vectors import snap
from vision.training.pretrained import load_pretrained

__all__ = ["altered_copies", "embed_images", "embed_pixels", "embedding_model"]

BATCH = 16  # larger batches are slower per image on 2 CPU cores (cache-bound depthwise convolutions)


def embedding_model(embedder: str) -> torch.nn.Module:
    """The pretrained backbone without its classifier: it returns pooled features."""
    return load_pretrained(embedder, num_classes=0)


@torch.inference_mode()
def embed_pixels(batches: Iterator[np.ndarray], total: int, model: torch.nn.Module, label: str = "embed",
                 progress: bool = False) -> np.ndarray:
    """Snapped unit-length features of uint8 NHWC batches, one row per image."""
    torch.manual_seed(0)
    chunks = []
    with Progress(label, total, unit="image", enabled=progress) as shown:
        for pixels in batches:
            features = model(to_tensor(pixels))
            chunks.append(torch.nn.functional.normalize(features, dim=1).numpy())
            shown.update(len(pixels))
    width = model.num_features
    return snap(np.concatenate(chunks)) if chunks else np.zeros((0, width), dtype=np.float32)


def embed_images(paths: list[Path], model: torch.nn.Module, size_px: int, progress: bool = False) -> np.ndarray:
    """Snapped unit-length features, one row per path; cosine similarity is then a dot product."""
    batches = (np.stack([load_rgb(path, size_px) for path in paths[start:start + BATCH]])
               for start in range(0, len(paths), BATCH))
    return embed_pixels(batches, len(paths), model, progress=progress)


def _altered_pixels(path: Path, alteration: Callable[[Image.Image], Image.Image], size_px: int) -> np.ndarray:
    with Image.open(path) as image:
        altered = alteration(image.convert("RGB"))
    return np.array(altered.resize((size_px, size_px), Image.Resampling.BICUBIC), dtype=np.uint8)


def altered_copies(paths: list[Path], model: torch.nn.Module, size_px: int,
                   progress: bool = False) -> dict[str, np.ndarray]:
    """Per alteration (vision.data.alterations), the snapped embedding of each path's altered copy."""
    result = {}
    for name, alteration in ALTERATIONS.items():
        batches = (np.stack([_altered_pixels(path, alteration, size_px) for path in paths[start:start + BATCH]])
                   for start in range(0, len(paths), BATCH))
        result[name] = embed_pixels(batches, len(paths), model, label=f"embed {name} copies", progress=progress)
    return result
