"""Run a detector over a split and get each image's detections in its own pixels: what evaluation reports and
what the server will answer."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader

from runtime.detections import Decoding, Detections, detect_batch
from vision.detection.data import DetectionSplit, LetterboxedImages, collate
from vision.detection.model import Detector

BATCH = 16


@torch.inference_mode()
def predict_split(model: Detector, data: DetectionSplit, decoding: Decoding) -> list[Detections]:
    model.eval()
    found: list[Detections] = []
    for x, _, fits in DataLoader(LetterboxedImages(data, decoding.input_wh), batch_size=BATCH, collate_fn=collate):
        outputs = [o.float().numpy() for o in model(x)[:3]]
        found.extend(detect_batch(*outputs, decoding, fits))
    return found

