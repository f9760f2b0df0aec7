"""The classification gate stage's contract."""

from __future__ import annotations

from dataclasses import replace

from core.contracts.gate import BASE

CONTRACT = replace(
    BASE,
    summary=("Judge every measured figure against the spec's thresholds, write the verdict and the dependability "
             "report, and fail on any unmet threshold"),
    params=("dependability.min_accuracy", "dependability.min_class_recall", *BASE.params),
    data_files=("vision/dependability/templates/dependability_base.html.j2",
                "vision/dependability/templates/dependability.html.j2"),
)
