"""The classification export stage's contract."""

from __future__ import annotations

from core.contract import PlotInfo, StageInfo

CONTRACT = StageInfo(
    name="export",
    summary=(
        "Quantize the candidates for target.hardware, measure every variant with ONNX Runtime and keep "
        "the fastest within compress.budget as the deployable model"
    ),
    params=("compress.budget", "compress.methods", "compress.calibration_images", "compress.quantization", "target"),
    inputs={
        "images": "ingest.images",
        "split": "prune.split",
        "candidates": "compress.candidates",
        "variants": "compress.variants",
        "model": "train.model",
    },
    outs={"deployable": "models/{project}/export"},
    reports={"choice": "reports/{project}/export/choice.json", "pareto": "reports/{project}/export/pareto.png"},
    metrics={"summary": "reports/{project}/export/summary.json"},
    plots=(
        PlotInfo(
            "variants",
            "reports/{project}/export/variants.csv",
            x="latency_ms_1_thread",
            y=("val_accuracy",),
            template="scatter",
            title="Variants: latency vs validation accuracy",
        ),
    ),
)
