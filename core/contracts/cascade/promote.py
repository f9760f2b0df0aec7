"""The cascade promote stage's contract."""

from __future__ import annotations

from core.contract import StageInfo
from core.contracts.cascade.inputs import CLASSIFIER_RELEASE, DETECTOR_RELEASE

CONTRACT = StageInfo(
    name="promote",
    summary=("On a passing gate only: bundle the detector, the classifier and the cascade's settings into one "
             "release (exactly the files the gate judged), record its content address with both models' digests "
             "in k8s/<project>/promoted.yaml, render the serving manifests and write the model card"),
    params=("cascade.detector", "cascade.classifier", "serving.storage_uri"),
    inputs={"verdict": "gate.verdict", "settings": "evaluate.settings", "evaluation": "evaluate.metrics",
            "figures": "dependability.metrics"},
    project_inputs={"detector": DETECTOR_RELEASE, "classifier": CLASSIFIER_RELEASE},
    outs={"release": "models/{project}/release"},
    reports={"record": "k8s/{project}/promoted.yaml", "model_card": "reports/{project}/model_card.md",
             "model_card_html": "reports/{project}/model_card.html"},
    module_name="stages.cascade.promote",
    task="cascade",
)
