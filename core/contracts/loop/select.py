"""The classification select stage's contract. Select scores with the deployable model whatever the gate said
(`dvc repro <project>-select` runs a round without the gate): a young project needs labels most when its model
is still poor."""

from __future__ import annotations

from core.contract import StageInfo
from core.contracts.loop.common import LOOP_FILES, LOOP_PARAMS, LOOP_REPORTS, SELECT_INPUTS, SELECT_SUMMARY

CONTRACT = StageInfo(
    name="select",
    summary=SELECT_SUMMARY,
    params=LOOP_PARAMS,
    inputs=SELECT_INPUTS,
    optional_inputs={"ensemble": ("ensemble.members", "active_learning.ensemble")},
    outs={"selection": "data/{project}/select"},
    files=LOOP_FILES,
    reports=LOOP_REPORTS,
    metrics={"summary": "reports/{project}/select/summary.json"},
    reads_paths_of=("active_learning.pool", "active_learning.zero_shot"),
    module_name="stages.loop.select",
    only_when="active_learning",
)
