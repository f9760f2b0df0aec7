"""What every task's ensemble stage declares alike: members are trained as the model was."""

from __future__ import annotations

from core.contract import StageInfo


def ensemble_contract(train: StageInfo, module: str, extra_inputs: dict[str, str] | None = None) -> StageInfo:
    """The ensemble stage of the task whose train stage is `train`: its params and the ensemble's size, the same
    training data, and the trained model's figures (its searched settings)."""
    return StageInfo(
        name="ensemble",
        summary=("Train the data loop's ensemble: members like the trained model (its searched settings included) "
                 "with seeds seed+1, seed+2, ..."),
        params=tuple(dict.fromkeys((*train.params, "active_learning.ensemble"))),
        inputs={"images": "ingest.images", "manifest": "ingest.manifest", "split": "prune.split",
                "train_metrics": "train.metrics", **(extra_inputs or {})},
        outs={"members": "models/{project}/ensemble"},
        metrics={"summary": "reports/{project}/ensemble/summary.json"},
        module_name=module,
        only_when="active_learning.ensemble",
        task=train.task,
    )
