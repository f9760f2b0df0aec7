"""The data loop's ensemble of detectors: each member's detections on the pool, as it would serve them (tile by
tile for a tiled detector), for the ensemble strategy and the ensemble annotator (vision.loop.scoring.agreed)."""

from __future__ import annotations

import numpy as np
import torch

from runtime.artifact import calibrated
from runtime.detections import Decoding, Detections, Letterbox, detect_batch
from runtime.tiling import sliced_detect
from vision.detection.sliced import torch_run
from vision.loop.scoring import FedBatch


@torch.inference_mode()
def member_detections(members: list[torch.nn.Module], fed: list[FedBatch], decoding: Decoding, temperature: float,
                      min_score: float) -> list[list[tuple[np.ndarray, np.ndarray]]]:
    """Per image, each member's (boxes in the image's own pixels, labels) of detections whose score, calibrated
    with the deployable's temperature, reaches `min_score` (tile by tile for a tiled detector, as it serves)."""
    per_member = []
    for model in members:
        model.eval()
        found: list[Detections] = []
        for batch in fed:
            if decoding.tiling is not None:
                run = torch_run(model)
                found.extend(sliced_detect(image, run, decoding).found for image in batch.full_images())
                continue
            outputs = [o.float().numpy() for o in model(torch.from_numpy(batch.tensor))[:3]]
            fits = [Letterbox.fit(w, h, decoding.input_wh) for w, h in batch.sizes]
            found.extend(detect_batch(*outputs, decoding, fits))
        kept = [calibrated(d.scores, temperature) >= min_score for d in found]
        per_member.append([(d.boxes[k], d.labels[k]) for d, k in zip(found, kept, strict=True)])
    return [list(images) for images in zip(*per_member, strict=True)]
