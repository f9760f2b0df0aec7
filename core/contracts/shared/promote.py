"""The promote stage's contract: every task runs it as it is (it bundles the same files whatever the task)."""

from __future__ import annotations

from core.contract import StageInfo

CONTRACT = StageInfo(
    name="promote",
    summary=("On a passing gate only: bundle the deployable model, record its content address in "
             "k8s/<project>/promoted.yaml, render the serving manifests for it and write the model card"),
    params=("serving.storage_uri",),
    inputs={"verdict": "gate.verdict", "deployable": "export.deployable",
            "serving_state": "dependability.serving_state", "evaluation": "evaluate.metrics",
            "export_summary": "export.summary", "figures": "dependability.metrics"},
    outs={"release": "models/{project}/release"},
    reports={"record": "k8s/{project}/promoted.yaml", "model_card": "reports/{project}/model_card.md",
             "model_card_html": "reports/{project}/model_card.html"},
)
