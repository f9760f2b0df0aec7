"""The detection validate stage's contract."""

from __future__ import annotations

from core.contract import StageInfo
from core.contracts import WEB_ASSETS

CONTRACT = StageInfo(
    name="validate",
    summary=(
        "Data-quality gate for boxes: a great-expectations suite from data.quality and data.boxes, run as a checkpoint"
    ),
    params=(
        "classes",
        "data.quality.min_images_per_class",
        "data.quality.max_corrupt_fraction",
        "data.boxes.min_instances_per_class",
        "data.boxes.max_instance_imbalance",
        "data.boxes.max_boxes_per_image",
        "data.boxes.area_fraction",
        "data.boxes.max_aspect_ratio",
        "data.boxes.max_quarantined_fraction",
    ),
    inputs={
        "images": "ingest.images",
        "manifest": "ingest.manifest",
        "boxes": "ingest.boxes",
        "quarantine": "ingest.quarantine",
        "box_quarantine": "ingest.box_quarantine",
    },
    outs={"data_docs": "reports/{project}/validate/data_docs"},
    files={"data_docs_index": "reports/{project}/validate/data_docs/index.html"},
    reports={"result": "reports/{project}/validate/result.json"},
    metrics={"summary": "reports/{project}/validate/summary.json"},
    data_files=WEB_ASSETS,
    module_name="stages.detection.validate",
    task="detection",
)
