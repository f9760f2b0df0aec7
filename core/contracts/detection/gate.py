"""The detection gate stage's contract."""

from __future__ import annotations

from dataclasses import replace

from core.contracts.gate import BASE

CONTRACT = replace(
    BASE,
    summary=("Judge the detector's figures against the spec's thresholds (mAP50-95, mAP50, OOD, corruption drops, "
             "D-ECE, budget), write the verdict and the report, and fail on any unmet threshold"),
    params=("dependability.min_map", "dependability.min_map50", *BASE.params),
    data_files=("vision/dependability/templates/dependability_base.html.j2",
                "vision/dependability/templates/dependability_detection.html.j2"),
    module_name="stages.detection.gate",
    task="detection",
)
