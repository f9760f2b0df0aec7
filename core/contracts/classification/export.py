"""The classification export stage's contract."""

from __future__ import annotations

from dataclasses import replace

from core.contract import PlotInfo
from core.contracts.export import BASE

CONTRACT = replace(
    BASE,
    summary=("Quantize the candidates for target.hardware, measure every variant with ONNX Runtime and keep the "
             "fastest within compress.budget as the deployable model"),
    params=("compress.budget", "compress.methods", "compress.calibration_images", "compress.quantization", "target"),
    inputs={**BASE.inputs, "model": "train.model"},
    plots=(PlotInfo("variants", "reports/{project}/export/variants.csv", x="latency_ms_1_thread", y=("val_accuracy",),
                    template="scatter", title="Variants: latency vs validation accuracy"),),
)
