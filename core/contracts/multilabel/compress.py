"""The multi-label compress stage's contract: the classifier's, its rounds scored by validation mAP over tags."""

from __future__ import annotations

from dataclasses import replace

from core.contract import PlotInfo
from core.contracts.classification.compress import CONTRACT as CLASSIFIER

CONTRACT = replace(
    CLASSIFIER,
    summary=("Prune (torch-pruning) and distill the trained tagger toward compress.budget, scored by validation mAP "
             "over tags; export every candidate to ONNX and check it against torch"),
    inputs={**CLASSIFIER.inputs, "tags": "ingest.tags"},
    plots=(PlotInfo("rounds", "reports/{project}/compress/rounds.csv", x="params", y=("val_map",),
                    template="scatter", title="Pruning rounds: parameters vs validation mAP over tags"),),
    module_name="stages.multilabel.compress",
    task="multilabel",
)
