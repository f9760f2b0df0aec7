"""The classification select stage's contract (the detection form adds to it). Select scores with the deployable
model whatever the gate said (`dvc repro <project>-select` runs a round without the gate): a young project needs
labels most when its model is still poor."""

from __future__ import annotations

from core.contract import StageInfo

CONTRACT = StageInfo(
    name="select",
    summary=("Score the unlabelled pool with the deployable model and pick the round's label queue (uncertainty and "
             "diversity): Label Studio tasks with pre-annotations, COCO/YOLO for CVAT, auto-labels apart"),
    # the loop's settings, and what pool images must pass as ingest does
    params=("seed", "classes", "active_learning", "data.embedding", "data.cleaning.static_frame_flow_px",
            "data.quality.min_size_px", "data.quality.max_image_pixels"),
    inputs={"images": "ingest.images", "manifest": "ingest.manifest", "embeddings": "embed.embeddings",
            "duplicate_rule": "clean.rule", "deployable": "export.deployable",
            "serving_state": "dependability.serving_state", "model": "train.model"},
    optional_inputs={"ensemble": ("ensemble.members", "active_learning.ensemble")},
    outs={"selection": "data/{project}/select"},
    files={"tasks": "data/{project}/select/labelstudio_tasks.json", "scores": "data/{project}/select/scores.csv",
           "auto_labels": "data/{project}/select/auto_labels.json", "pool": "data/{project}/select/pool.csv"},
    reports={"queue_png": "reports/{project}/select/queue.png"},
    metrics={"summary": "reports/{project}/select/summary.json"},
    reads_paths_of=("active_learning.pool", "active_learning.zero_shot"),
    module_name="stages.loop.select",
    only_when="active_learning",
)
