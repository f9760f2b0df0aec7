"""A split through a tiled detector: each image read at full size and detected tile by tile (runtime.tiling),
in torch or ONNX Runtime alike, so evaluation, compression, dependability and the server merge the same way."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from runtime.detections import Decoding, Detections
from runtime.tiling import Outputs, Run, sliced_detect
from vision.data.dataset import to_tensor
from vision.detection.data import DetectionSplit, read_rgb


def torch_run(model: torch.nn.Module) -> Run:
    """The detector in torch as runtime.tiling's `Run` (uint8 batch in, float32 numpy outputs out)."""
    @torch.inference_mode()
    def run(images: np.ndarray) -> Outputs:
        logits, regression, centerness, features = (o.float().numpy() for o in model.eval()(to_tensor(images)))
        return logits, regression, centerness, features

    return run


def sliced_split(split: DetectionSplit, run: Run, decoding: Decoding,
                 corrupt: Callable[[np.ndarray], np.ndarray] | None = None) -> tuple[list[Detections], np.ndarray]:
    """Each image's merged detections in its own pixels and its whole-image pooled features ([N, D]); `corrupt`
    changes each full-size image first (dependability's corruptions, which move no box)."""
    found: list[Detections] = []
    features: list[np.ndarray] = []
    for path in split.paths:
        image = read_rgb(split.root / path)
        if corrupt is not None:
            image = corrupt(image[None])[0]
        out = sliced_detect(image, run, decoding)
        found.append(out.found)
        features.append(out.features)
    return found, np.stack(features) if features else np.zeros((0, 0), np.float32)
