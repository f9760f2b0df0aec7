"""The detection synthesize stage's contract."""

from __future__ import annotations

from core.contract import StageInfo

CONTRACT = StageInfo(
    name="synthesize",
    summary="Build the embedded detection data set (digits pasted on real photos, exact boxes) as COCO",
    params=("seed", "classes", "data.synthesize"),
    outs={"dataset": "data/{project}/synthesize"},
    module_name="stages.detection.synthesize",
    only_when="data.synthesize",
    task="detection",
)
