"""The detection export stage's contract."""

from __future__ import annotations

from dataclasses import replace

from core.contract import PlotInfo
from core.contracts.export import BASE

CONTRACT = replace(
    BASE,
    summary=("Lower the detector candidates for target.hardware (int8 or fp16), measure mAP and batch-1 latency with "
             "decoding and NMS for every variant, and keep the fastest within compress.budget"),
    params=("compress.budget", "compress.methods", "compress.calibration_images", "detection.confidence_threshold",
            "target"),
    inputs={"images": "ingest.images", "boxes": "ingest.boxes", "split": "prune.split",
            "candidates": "compress.candidates", "variants": "compress.variants"},
    plots=(PlotInfo("variants", "reports/{project}/export/variants.csv", x="latency_ms_1_thread", y=("val_map",),
                    template="scatter", title="Variants: latency vs validation mAP50-95"),),
    module_name="stages.detection.export",
    task="detection",
)
