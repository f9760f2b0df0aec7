"""The multi-label gate stage's contract."""

from __future__ import annotations

from dataclasses import replace

from core.contracts.gate import BASE

CONTRACT = replace(
    BASE,
    summary=("Judge the tagger's figures against the spec's thresholds (mAP over tags, every tag's AP, OOD, "
             "corruption drops, tag ECE, budget), write the verdict and the report, and fail on any unmet threshold"),
    params=("dependability.min_map", "dependability.min_tag_ap", *BASE.params),
    inputs={name: reference for name, reference in BASE.inputs.items() if name != "gradcam_png"},
    data_files=("vision/dependability/templates/dependability_base.html.j2",
                "vision/dependability/templates/dependability_multilabel.html.j2"),
    module_name="stages.multilabel.gate",
    task="multilabel",
)
