"""The cascade gate stage's contract."""

from __future__ import annotations

from core.contract import StageInfo
from core.contracts.cascade.inputs import CLASSIFIER_RELEASE, CLASSIFIER_VERDICT, DETECTOR_RELEASE, DETECTOR_VERDICT

CONTRACT = StageInfo(
    name="gate",
    summary=("Judge the cascade end to end (mAP50-95 and mAP50 over the fine classes, the drop under each "
             "corruption, the far images it answers, the combined score's D-ECE), "
             "require both models' own gates to have passed the very files the cascade ran, record every judged "
             "file's digest, and fail on any unmet check"),
    params=("cascade.detector", "cascade.classifier", "dependability.min_map", "dependability.min_map50",
            "dependability.robustness.max_accuracy_drop",
            "dependability.ood.max_accepted_fraction", "dependability.calibration"),
    inputs={"metrics": "evaluate.metrics", "settings": "evaluate.settings", "figures": "dependability.metrics"},
    project_inputs={"detector": DETECTOR_RELEASE, "classifier": CLASSIFIER_RELEASE,
                    "detector_verdict": DETECTOR_VERDICT, "classifier_verdict": CLASSIFIER_VERDICT},
    reports={"summary_md": "reports/{project}/gate/summary.md"},
    metrics={"verdict": "reports/{project}/gate/verdict.json"},
    module_name="stages.cascade.gate",
    task="cascade",
)
