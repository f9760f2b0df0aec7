"""The multi-label export stage's contract: the classifier's, its variants scored by mAP over tags."""

from __future__ import annotations

from dataclasses import replace

from core.contract import PlotInfo
from core.contracts.classification.export import CONTRACT as CLASSIFIER

CONTRACT = replace(
    CLASSIFIER,
    summary=("Quantize the tagger's candidates for target.hardware, measure every variant's mAP over tags and "
             "latency with ONNX Runtime, keep the fastest within compress.budget, and ship its per-tag thresholds"),
    inputs={**CLASSIFIER.inputs, "tags": "ingest.tags"},
    plots=(PlotInfo("variants", "reports/{project}/export/variants.csv", x="latency_ms_1_thread", y=("val_map",),
                    template="scatter", title="Variants: latency vs validation mAP over tags"),),
    module_name="stages.multilabel.export",
    task="multilabel",
)
