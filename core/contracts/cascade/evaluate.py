"""The cascade evaluate stage's contract."""

from __future__ import annotations

from core.contract import ProjectInput, StageInfo
from core.contracts.cascade.inputs import CLASSIFIER_RELEASE, DETECTOR_RELEASE

CONTRACT = StageInfo(
    name="evaluate",
    summary=("Run the released detector on its project's test images, crop each detection as the classifier's crops "
             "were cut, name it with the released classifier, and measure mAP per fine class end to end beside "
             "the single-stage baseline on the same images"),
    params=("classes", "cascade"),
    project_inputs={
        "detector": DETECTOR_RELEASE, "classifier": CLASSIFIER_RELEASE,
        "images": ProjectInput("cascade.detector", "detection", "ingest.images"),
        "split": ProjectInput("cascade.detector", "detection", "split.split"),
        # the baseline is measured, never judged: its deployable file (what its release would hold), so a cascade
        # is compared with it whether or not its own gate passed
        "baseline": ProjectInput("cascade.baseline", "detection", "export.deployable"),
        "baseline_split": ProjectInput("cascade.baseline", "detection", "split.split"),
    },
    outs={"settings": "models/{project}/cascade", "answers": "data/{project}/evaluate"},
    files={"settings_file": "models/{project}/cascade/cascade.json",
           "answers_file": "data/{project}/evaluate/answers.json"},
    reports={"per_class": "reports/{project}/evaluate/per_class.csv"},
    metrics={"metrics": "reports/{project}/evaluate/metrics.json"},
    module_name="stages.cascade.evaluate",
    task="cascade",
)
