"""ONNX Runtime sees fewer images per run as they grow, so its memory arena does not grow with image size."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from vision.compression.onnx import predict_outputs
from vision.data.streams import PIXELS_PER_BATCH


class _Session:
    """Stands in for an InferenceSession: records each run's batch and answers with per-image values."""

    def __init__(self) -> None:
        self.batches: list[int] = []

    def get_inputs(self) -> list[SimpleNamespace]:
        return [SimpleNamespace(type="tensor(float)")]

    def run(self, names: list[str], feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        batch = next(iter(feeds.values()))
        self.batches.append(len(batch))
        return [batch.mean(axis=(1, 2, 3))[:, None] for _ in names]


def test_large_images_run_in_small_batches_and_small_ones_in_large() -> None:
    big, small = _Session(), _Session()
    images = np.random.default_rng(0).integers(0, 255, (70, 224, 224, 3), dtype=np.uint8)
    [logits, _] = predict_outputs(big, images)
    assert max(big.batches) * 224 * 224 <= PIXELS_PER_BATCH
    assert sum(big.batches) == 70
    assert logits.shape == (70, 1)
    predict_outputs(small, np.zeros((300, 32, 32, 3), np.uint8))
    assert small.batches == [256, 44]  # small images keep the usual batch
    whole = _Session()
    [one_run, _] = predict_outputs(whole, images[:8])
    assert np.allclose(one_run, logits[:8])  # same answers whatever the batching
