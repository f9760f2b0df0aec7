"""The detection prune stage's contract."""

from __future__ import annotations

from dataclasses import replace

from core.contracts.prune import BASE

CONTRACT = replace(
    BASE,
    summary=("Keep the most useful data.pruning.budget share of the training split, and at least "
             "data.boxes.min_instances_per_class boxes of every class"),
    params=("seed", "data.pruning", "data.boxes.min_instances_per_class"),
    inputs={**BASE.inputs, "boxes": "ingest.boxes"},
    module_name="stages.detection.prune",
    task="detection",
)
