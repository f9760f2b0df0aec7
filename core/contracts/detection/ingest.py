"""The detection ingest stage's contract."""

from __future__ import annotations

from dataclasses import replace

from core.contracts.ingest import BASE

CONTRACT = replace(
    BASE,
    summary=("Collect images and boxes from the spec's coco, yolo and voc sources into one canonical image set, an "
             "image manifest and a box table (xyxy pixels); bad images and bad boxes quarantined"),
    params=("classes", "data.sources", "data.quality.min_size_px", "data.quality.max_image_pixels",
            "data.boxes.clip_tolerance_px", "data.boxes.min_side_px", "data.boxes.duplicate_iou"),
    files={"manifest": "data/{project}/ingest/manifest.csv", "boxes": "data/{project}/ingest/boxes.csv",
           "quarantine": "data/{project}/ingest/quarantine.csv",
           "box_quarantine": "data/{project}/ingest/box_quarantine.csv",
           "skipped": "data/{project}/ingest/skipped.csv"},
    module_name="stages.detection.ingest",
    task="detection",
)
