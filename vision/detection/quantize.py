"""Static int8 for detectors that keeps validation mAP: ONNX Runtime's QDQ quantizer on the convolutions, and,
when the int8 file falls below the accuracy floor, the few most sensitive layers kept in fp32.

Convolutions only: the quantizer would otherwise also quantize the shape constants of the head's GroupNorm
(exported as Reshape + InstanceNormalization) and break the graph. Sensitivity is measured as for classifiers
(vision.compression.quantize): each convolution quantized alone against one shared calibration, its cost the
change of the detector's outputs on probe images (per-class scores and box regressions); the costliest
1, 2, 4, ... up to MAX_FP32_LAYERS stay fp32 until the floor holds. The head's convolutions run once per
pyramid level with one shared weight: a "layer" here is every Conv node of one weight, quantized or kept
together (excluding one node alone would leave the shared weight quantized for the others).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx

from vision.compression.quantize import Calibrated, Int8Plan, Int8Result, keep_costliest_in_fp32
from vision.data.dataset import to_tensor
from vision.detection.onnx import session

MAX_FP32_LAYERS = 8
SENSITIVITY_IMAGES = 32


def _outputs(path: Path, probe: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    sess = session(path)
    logits, regression = sess.run(["class_logits", "box_regression"], {"input": to_tensor(probe).numpy()})
    return 1.0 / (1.0 + np.exp(-np.asarray(logits, np.float64))), np.asarray(regression, np.float64)


def layers(prepared: Path) -> list[tuple[str, ...]]:
    """The Conv nodes grouped by their weight, in graph order of each weight's first use."""
    groups: dict[str, list[str]] = {}
    for node in onnx.load(str(prepared), load_external_data=False).graph.node:
        if node.op_type == "Conv":
            groups.setdefault(node.input[1], []).append(node.name)
    return [tuple(names) for names in groups.values()]


def layer_costs(calibrated: Calibrated, convolutions: list[tuple[str, ...]], probe: np.ndarray, weight_bits: int,
                work: Path) -> list[tuple[str, ...]]:
    """The layers, costliest first: mean absolute change of the class scores plus that of the box regressions
    (in strides) when only that layer is int8 (ties keep graph order)."""
    scores, boxes = _outputs(calibrated.prepared, probe)
    costs = []
    for position, nodes in enumerate(convolutions):
        q_scores, q_boxes = _outputs(calibrated.quantize(work / "one-layer.onnx", weight_bits, only=nodes), probe)
        costs.append((float(np.abs(q_scores - scores).mean() + np.abs(q_boxes - boxes).mean()), position, nodes))
    return [nodes for _, _, nodes in sorted(costs, key=lambda item: (-item[0], item[1]))]


def quantize_within_floor(fp32: Path, out: Path, calibration: np.ndarray, probe: np.ndarray, weight_bits: int,
                          val_map: Callable[[Path], float], floor: float) -> Int8Result:
    """A detector's int8 file within the floor (vision.compression.quantize.keep_costliest_in_fp32): calibrated on
    `calibration` (letterboxed uint8 images), only its convolutions quantized, scored by validation mAP50-95
    (`val_map` measures a file), its convolutions ranked by how far each alone moves scores and boxes."""
    with tempfile.TemporaryDirectory(prefix="autodl-detector-int8-") as folder:
        work = Path(folder)
        calibrated = Calibrated(fp32, calibration, work)
        grouped = layers(calibrated.prepared)
        convolutions = tuple(name for nodes in grouped for name in nodes)
        plan = Int8Plan(weight_bits, floor, MAX_FP32_LAYERS, len(probe))
        return keep_costliest_in_fp32(calibrated, out, work, plan, val_map,
                                      lambda: layer_costs(calibrated, grouped, probe, weight_bits, work),
                                      only=convolutions)
