"""The classification ensemble stage's contract: members trained like the model, for the loop's uncertainty."""

from __future__ import annotations

from core.contract import StageInfo
from core.contracts.classification.train import CONTRACT as TRAIN
from core.contracts.loop.common import ENSEMBLE_SUMMARY, ensemble_params

CONTRACT = StageInfo(
    name="ensemble",
    summary=ENSEMBLE_SUMMARY,
    params=ensemble_params(TRAIN.params),
    inputs={"images": "ingest.images", "manifest": "ingest.manifest", "split": "prune.split",
            "train_metrics": "train.metrics"},
    outs={"members": "models/{project}/ensemble"},
    metrics={"summary": "reports/{project}/ensemble/summary.json"},
    module_name="stages.loop.ensemble",
    only_when="active_learning.ensemble",
)
