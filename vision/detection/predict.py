"""Run a detector over a split and get each image's detections in its own pixels: what evaluation reports and
what the server will answer (tile by tile for a tiled detector)."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader

from runtime.detections import Decoding, Detections, detect_batch
from vision.detection.data import DetectionSplit, LetterboxedImages, collate
from vision.detection.model import Detector
from vision.detection.sliced import sliced_split, torch_run

BATCH = 16


@torch.inference_mode()
def predict_split(model: Detector, data: DetectionSplit, decoding: Decoding) -> list[Detections]:
    """Each image's detections; a tiled detector's found tile by tile on the full-size image and merged."""
    if decoding.tiling is not None:
        return sliced_split(data, torch_run(model), decoding)[0]
    model.eval()
    found: list[Detections] = []
    for x, _, fits in DataLoader(LetterboxedImages(data, decoding.input_wh), batch_size=BATCH, collate_fn=collate):
        outputs = [o.float().numpy() for o in model(x)[:3]]
        found.extend(detect_batch(*outputs, decoding, fits))
    return found

