"""The detection validate stage's contract."""

from __future__ import annotations

from dataclasses import replace

from core.contracts.validate import BASE

CONTRACT = replace(
    BASE,
    summary=("Data-quality gate for boxes: a great-expectations suite from data.quality and data.boxes, run as a "
             "checkpoint"),
    params=("classes", "data.quality.min_images_per_class", "data.quality.max_corrupt_fraction",
            "data.boxes.min_instances_per_class", "data.boxes.max_instance_imbalance", "data.boxes.max_boxes_per_image",
            "data.boxes.area_fraction", "data.boxes.max_aspect_ratio", "data.boxes.max_quarantined_fraction"),
    inputs={"images": "ingest.images", "manifest": "ingest.manifest", "boxes": "ingest.boxes",
            "quarantine": "ingest.quarantine", "box_quarantine": "ingest.box_quarantine"},
    module_name="stages.detection.validate",
    task="detection",
)
