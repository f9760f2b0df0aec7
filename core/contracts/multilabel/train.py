"""The multi-label train stage's contract."""

from __future__ import annotations

from dataclasses import replace

from core.contract import PlotInfo
from core.contracts.train import BASE, LOSS_PLOT

CONTRACT = replace(
    BASE,
    summary=("Train the spec's timm backbone as a tagger (one sigmoid per tag, binary cross-entropy) with Lightning "
             "on the pruned training split (optuna search first when train.hpo is set)"),
    params=("seed", "classes", "augment", "model", "train", "target.hardware", "compress.budget.max_latency_ms"),
    inputs={"images": "ingest.images", "manifest": "ingest.manifest", "tags": "ingest.tags", "split": "prune.split"},
    plots=(PlotInfo("map", "reports/{project}/train/history.csv", x="epoch", y=("val_map", "val_macro_f1"),
                    title="Validation mAP and macro-F1 over tags per epoch"),
           LOSS_PLOT),
    module_name="stages.multilabel.train",
    task="multilabel",
)
