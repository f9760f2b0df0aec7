"""The cascade select stage's contract: the data loop's round scored by the pair. The pool is admitted against the
detector's labelled images (its manifest, embeddings and duplicate rule), and the queue's labels belong to the
fine classes (the data the detector's boxes and the classifier's crops both come from)."""

from __future__ import annotations

from dataclasses import replace

from core.contract import ProjectInput
from core.contracts.cascade.inputs import CLASSIFIER_RELEASE, DETECTOR_RELEASE
from core.contracts.loop.select import CONTRACT as LOOP_SELECT

CONTRACT = replace(
    LOOP_SELECT,
    summary=("Score the unlabelled pool with the released pair (an unsure box, or a sure box whose fine class is "
             "unsure) and pick the round's label queue: Label Studio tasks with each box's fine class and both "
             "scores, COCO for CVAT"),
    params=("seed", "classes", "cascade", "active_learning", "data.cleaning.static_frame_flow_px",
            "data.quality.min_size_px", "data.quality.max_image_pixels", "data.embedding"),
    inputs={"settings": "evaluate.settings"},
    optional_inputs={},
    project_inputs={
        "detector": DETECTOR_RELEASE, "classifier": CLASSIFIER_RELEASE,
        "manifest": ProjectInput("cascade.detector", "detection", "ingest.manifest"),
        "embeddings": ProjectInput("cascade.detector", "detection", "embed.embeddings"),
        "duplicate_rule": ProjectInput("cascade.detector", "detection", "clean.rule"),
    },
    reads_paths_of=("active_learning.pool",),
    module_name="stages.cascade.select",
    task="cascade",
)
