"""The detection select stage's contract: the loop's round for a detector, which also reads the boxes and the
detector's settings (stages.loop.select runs it with the detection task)."""

from __future__ import annotations

from core.contract import StageInfo
from core.contracts.loop.common import LOOP_FILES, LOOP_PARAMS, LOOP_REPORTS, SELECT_INPUTS, SELECT_SUMMARY

CONTRACT = StageInfo(
    name="select",
    summary=SELECT_SUMMARY,
    params=(*LOOP_PARAMS, "detection"),
    inputs={**SELECT_INPUTS, "boxes": "ingest.boxes"},
    optional_inputs={"ensemble": ("ensemble.members", "active_learning.ensemble")},
    outs={"selection": "data/{project}/select"},
    files=LOOP_FILES,
    reports=LOOP_REPORTS,
    metrics={"summary": "reports/{project}/select/summary.json"},
    reads_paths_of=("active_learning.pool", "active_learning.zero_shot"),
    module_name="stages.detection.loop.select",
    only_when="active_learning",
    task="detection",
)
