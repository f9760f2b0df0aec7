"""Static int8 quantization with ONNX Runtime that keeps accuracy: weight bits, per-layer sensitivity, fp32 layers.

ONNX Runtime's `quantize_static` does the quantizing; this module decides how:
7- or 8-bit weights (the target's), and, when the int8 file misses the accuracy
floor, which few layers stay fp32. Those are found by quantizing one layer at a
time against one shared calibration (ONNX Runtime's calibration cache) and
ranking layers by how far each moves the logits; the costliest are excluded
(`nodes_to_exclude`) until the floor holds.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from core.spec.deployment import Quantization
from vision.compression.onnx import INPUT, onnx_score, predict, session
from vision.data.dataset import SplitData, to_tensor
from vision.data.streams import Images, batches
from vision.tasks.base import Task
from vision.tasks.classification import TASK as CLASSIFICATION
from vision.tasks.classification import softmax_divergence

WEIGHTED_OPS = ("Conv", "Gemm", "MatMul")
"""The layers that carry weights: the ones a sensitivity ranking can keep in fp32."""


class _Calibration:
    """onnxruntime's CalibrationDataReader protocol over preprocessed training images."""

    def __init__(self, images: Images, batch: int = 32):
        self._batches: Iterator[np.ndarray] = (to_tensor(chunk).numpy() for chunk in batches(images, batch))

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._batches, None)
        return None if batch is None else {INPUT: batch}


class Calibrated:
    """A fp32 file prepared for quantization and calibrated once; every `quantize` call reuses the ranges.

    Static QDQ int8 (per-channel symmetric weights, uint8 activations from MinMax
    ranges over training images). Static, not dynamic: dynamic quantization leaves
    convolutions in fp32 with per-call activation scaling, slower than fp32 on CPU.
    ONNX Runtime holds every calibration batch's intermediate tensors until it
    computes the ranges, so calibration memory grows with `compress.calibration_images`
    (capped by the spec), not with the data; its CalibMaxIntermediateOutputs option
    would bound it, but in 1.31 it drops the batches unmeasured.
    """

    def __init__(self, fp32: Path, images: Images, work: Path):
        from onnxruntime.quantization.shape_inference import quant_pre_process

        self.prepared, self.cache = work / "prepared.onnx", work / "calibration.json"
        quant_pre_process(str(fp32), str(self.prepared), skip_symbolic_shape=True)
        self._images = images

    def weighted_nodes(self) -> list[str]:
        """Names of the weighted layers, in graph order."""
        graph = onnx.load(str(self.prepared), load_external_data=False).graph
        return [node.name for node in graph.node if node.op_type in WEIGHTED_OPS]

    def quantize(self, out: Path, weight_bits: int = 8, exclude: tuple[str, ...] = (),
                 only: tuple[str, ...] | None = None) -> Path:
        """Write the int8 file: every layer but `exclude`, or only the layers in `only`."""
        from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

        reader = None if self.cache.is_file() else _Calibration(self._images)
        quantize_static(str(self.prepared), str(out), reader, quant_format=QuantFormat.QDQ, per_channel=True,
                        reduce_range=weight_bits == 7, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8, nodes_to_exclude=list(exclude),
                        nodes_to_quantize=list(only) if only is not None else None,
                        calibration_cache_path=str(self.cache))
        onnx.checker.check_model(str(out), full_check=True)
        return out


def quantize_int8(fp32: Path, out: Path, calibration_images: Images, weight_bits: int = 8,
                  exclude: tuple[str, ...] = ()) -> None:
    """One int8 file from one fp32 file (the calibration is thrown away afterwards)."""
    with tempfile.TemporaryDirectory(prefix="autodl-int8-") as work:
        Calibrated(fp32, calibration_images, Path(work)).quantize(out, weight_bits, exclude)


@dataclass(frozen=True)
class LayerCost:
    node: str
    kl_divergence: float
    """Mean KL divergence of the class distribution when only this layer is int8, against fp32."""
    top1_changed: float
    """Share of the probe images whose top-1 class changes."""


def layer_sensitivity(calibrated: Calibrated, probe: Images, weight_bits: int, work: Path,
                      divergence: Callable[[np.ndarray, np.ndarray], float] = softmax_divergence) -> list[LayerCost]:
    """Every weighted layer quantized alone, costliest first (ties keep graph order).

    One layer at a time, not all-but-one: the cost of one layer alone is what keeping
    it in fp32 buys back, and it needs one calibration instead of one per layer.
    """
    reference = predict(session(calibrated.prepared), probe)
    costs = []
    for position, node in enumerate(calibrated.weighted_nodes()):
        logits = predict(session(calibrated.quantize(work / "one-layer.onnx", weight_bits, only=(node,))), probe)
        costs.append((position, LayerCost(node, round(divergence(reference, logits), 9),
                                          round(float((logits.argmax(1) != reference.argmax(1)).mean()), 6))))
    return [cost for _, cost in sorted(costs, key=lambda item: (-item[1].kl_divergence, -item[1].top1_changed,
                                                                  item[0]))]


@dataclass(frozen=True)
class Int8Result:
    score: float
    """The kept file's validation score (the task's: accuracy, mAP50-95)."""
    fp32_layers: tuple[str, ...]
    """Nodes kept in fp32, costliest layer first."""
    tried: tuple[tuple[int, float], ...]
    """(layers kept in fp32, validation score) for every file tried, in order."""


@dataclass(frozen=True)
class Int8Plan:
    """How an int8 file is made and how far it may go to reach the accuracy floor."""

    weight_bits: int
    floor: float
    """Validation accuracy the int8 file should keep (the trained model's minus the allowed drop)."""
    max_fp32_layers: int = 0
    sensitivity_images: int = 128

    @classmethod
    def from_spec(cls, settings: Quantization, target_weight_bits: int, floor: float) -> Int8Plan:
        bits = target_weight_bits if settings.weight_bits == "auto" else int(settings.weight_bits)
        return cls(bits, floor, settings.max_fp32_layers, settings.sensitivity_images)


# Eight parameters: the files, the calibration, how a file is scored against which floor, and how far to go.
def keep_costliest_in_fp32(calibrated: Calibrated, out: Path, work: Path, plan: Int8Plan,
                           score: Callable[[Path], float], ranking: Callable[[], list[tuple[str, ...]]],
                           only: tuple[str, ...] | None = None) -> Int8Result:
    """Int8 of the calibrated file at `out`, for every task; when its score is below the plan's floor, the
    costliest layers (`ranking`, each layer a group of node names, costliest first) stay fp32: 1, 2, 4, ... up to
    `max_fp32_layers`, the first count that reaches the floor (else the best file tried). `only`: the nodes that
    may be quantized at all (None: every one)."""
    tried = [(0, round(score(calibrated.quantize(out, plan.weight_bits, only=only)), 6))]
    if tried[0][1] >= plan.floor or plan.max_fp32_layers == 0:
        return Int8Result(tried[0][1], (), tuple(tried))
    ranked = ranking()
    most = min(plan.max_fp32_layers, len(ranked))
    best = (tried[0][1], 0)
    for count in sorted({min(2 ** k, most) for k in range(most.bit_length() + 1)}):
        kept = tuple(name for nodes in ranked[:count] for name in nodes)
        trial = calibrated.quantize(work / f"keep-{count}.onnx", plan.weight_bits, exclude=kept, only=only)
        tried.append((count, round(score(trial), 6)))
        if tried[-1][1] > best[0]:
            best = (tried[-1][1], count)
            trial.replace(out)
        if best[0] >= plan.floor:
            break
    return Int8Result(best[0], tuple(name for nodes in ranked[:best[1]] for name in nodes), tuple(tried))


def quantize_within_floor(fp32: Path, out: Path, calibration_images: Images, val: SplitData,
                          plan: Int8Plan, task: Task = CLASSIFICATION) -> Int8Result:
    """An image-level task's int8 file within the floor (keep_costliest_in_fp32): scored by the task's validation
    score (accuracy, mAP over tags), its weighted layers ranked by how far quantizing each alone moves the
    outputs (Task.divergence)."""
    with tempfile.TemporaryDirectory(prefix="autodl-int8-") as folder:
        work = Path(folder)
        calibrated = Calibrated(fp32, calibration_images, work)

        def ranking() -> list[tuple[str, ...]]:
            probe = val.sample(plan.sensitivity_images)
            return [(cost.node,) for cost in layer_sensitivity(calibrated, probe.images, plan.weight_bits, work,
                                                               task.divergence)]

        return keep_costliest_in_fp32(calibrated, out, work, plan, lambda path: onnx_score(session(path), val, task),
                                      ranking)
