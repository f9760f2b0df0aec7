"""The detection train stage's contract."""

from __future__ import annotations

from dataclasses import replace

from core.contract import PlotInfo
from core.contracts.train import BASE, LOSS_PLOT

CONTRACT = replace(
    BASE,
    summary=("Train the single-stage detector (timm backbone, FPN, FCOS head) with Lightning on the pruned training "
             "split, keeping the epoch of best validation mAP (optuna search first when train.hpo is set)"),
    params=("seed", "classes", "augment", "model.backbone", "model.pretrained", "train", "detection.input_size_px",
            "detection.strides", "detection.fpn_channels", "detection.head_convs", "detection.center_sampling_radius",
            "detection.score_threshold", "detection.nms_iou", "detection.max_detections", "detection.min_visibility",
            "detection.tiling"),
    inputs={"images": "ingest.images", "boxes": "ingest.boxes", "split": "prune.split"},
    plots=(PlotInfo("map", "reports/{project}/train/history.csv", x="epoch", y=("val_map", "val_map50"),
                    title="Validation mAP per epoch"),
           LOSS_PLOT),
    module_name="stages.detection.train",
    task="detection",
)
