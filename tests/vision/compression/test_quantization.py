"""Int8 that keeps accuracy: the sensitivity ranking finds a fragile layer, excluded layers stay fp32,
7-bit weights stay in range, and quantization-aware fine-tuning matches the int8 file it exports to."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from core.spec.training import TrainSection
from tests.conftest import tiny_resnet, tiny_split_data
from vision.compression.onnx import export_onnx, predict, session
from vision.compression.qat import add_fake_quant, calibrate, fold_batchnorm, quantization_aware_finetune
from vision.compression.quantize import Calibrated, Int8Plan, layer_sensitivity, quantize_int8, quantize_within_floor
from vision.data.dataset import to_tensor
from vision.training.model import predict_logits

pytestmark = pytest.mark.slow
SIZE = 16
FRAGILE = "/conv1/conv1.3/"
"""The stem convolution made fragile by weights of 1000 on an always-zero input (see _with_outlier_weights)."""


@pytest.fixture(scope="module")
def splits(tiny_digits: Path):
    return tiny_split_data(tiny_digits, SIZE)


@pytest.fixture(scope="module")
def trained(splits) -> torch.nn.Module:
    train, val, _ = splits
    return tiny_resnet(train, val, SIZE, epochs=5)


def _with_outlier_weights(trained: torch.nn.Module, images: np.ndarray) -> torch.nn.Module:
    """The stem's second convolution made fragile to int8 alone: its least active input channel is silenced
    (BatchNorm scale 0, shift -1, then ReLU), and the weights reading that always-zero channel are set to 1000.
    fp32 does not see them; per-channel int8 scales every output channel to them, leaving the real weights
    a level or two."""
    model = copy.deepcopy(trained).eval()
    bn, conv, seen = model.conv1[1], model.conv1[3], []
    hook = conv.register_forward_pre_hook(lambda _, inputs: seen.append(inputs[0].amax(dim=(0, 2, 3))))
    predict_logits(model, to_tensor(images))
    hook.remove()
    channel = int(seen[0].argmin())
    with torch.no_grad():
        bn.weight[channel], bn.bias[channel] = 0.0, -1.0
        conv.weight[:, channel] = 1000.0
    return model


def _conv_weight_sources(path: Path) -> dict[str, str]:
    """For each Conv node, what its weight input is: 'int8' (dequantized) or 'fp32' (a float initializer)."""
    graph = onnx.load(str(path)).graph
    producers = {output: node.op_type for node in graph.node for output in node.output}
    return {node.name: "int8" if producers.get(node.input[1]) == "DequantizeLinear" else "fp32"
            for node in graph.node if node.op_type == "Conv"}


def test_sensitivity_ranks_the_layer_with_an_outlier_input_first(trained, splits, tmp_path: Path) -> None:
    train, val, _ = splits
    export_onnx(_with_outlier_weights(trained, train.images[:]), SIZE, tmp_path / "fp32.onnx")
    calibrated = Calibrated(tmp_path / "fp32.onnx", train.images[:60], tmp_path)
    ranking = layer_sensitivity(calibrated, val.images, weight_bits=8, work=tmp_path)
    assert FRAGILE in ranking[0].node
    assert ranking[0].kl_divergence > 10 * ranking[1].kl_divergence
    assert len(ranking) == len(calibrated.weighted_nodes())


def test_int8_below_the_floor_keeps_the_costliest_layer_fp32_and_gets_accuracy_back(trained, splits,
                                                                                    tmp_path: Path) -> None:
    train, val, _ = splits
    export_onnx(_with_outlier_weights(trained, train.images[:]), SIZE, tmp_path / "fp32.onnx")
    fp32_accuracy = float((predict(session(tmp_path / "fp32.onnx"), val.images).argmax(1) == val.labels).mean())
    plan = Int8Plan(weight_bits=8, floor=fp32_accuracy - 0.05, max_fp32_layers=4, sensitivity_images=24)
    result = quantize_within_floor(tmp_path / "fp32.onnx", tmp_path / "int8.onnx", train.images[:60], val, plan)
    plain = result.tried[0][1]
    assert plain < plan.floor  # the outlier breaks plain int8
    assert result.score >= plan.floor
    assert FRAGILE in result.fp32_layers[0]
    sources = _conv_weight_sources(tmp_path / "int8.onnx")
    kept = {name for name, source in sources.items() if source == "fp32"}
    assert kept == set(result.fp32_layers)  # exactly the excluded layers stay fp32, every other one is int8
    assert sum(source == "int8" for source in sources.values()) == len(sources) - len(kept)


def test_seven_bit_weights_stay_within_the_reduced_range(trained, splits, tmp_path: Path) -> None:
    train, _, _ = splits
    export_onnx(trained, SIZE, tmp_path / "fp32.onnx")
    for bits, limit in ((7, 64), (8, 127)):
        quantize_int8(tmp_path / "fp32.onnx", tmp_path / f"int8-{bits}.onnx", train.images[:60], weight_bits=bits)
        weights = [numpy_helper.to_array(t) for t in onnx.load(str(tmp_path / f"int8-{bits}.onnx")).graph.initializer
                   if t.data_type == onnx.TensorProto.INT8 and t.dims and len(t.dims) == 4]
        largest = max(int(np.abs(w.astype(np.int32)).max()) for w in weights)
        assert largest == limit  # each channel's largest weight maps to the end of the range


def test_quantization_aware_model_agrees_with_the_int8_file_it_exports_to(trained, splits, tmp_path: Path) -> None:
    train, val, test = splits
    model = quantization_aware_finetune(trained, train, val, TrainSection(epochs=1, batch_size=16), 0, weight_bits=7)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())  # folded, as the export folds it
    calibration = train.images[:60]
    export_onnx(model, SIZE, tmp_path / "qat-fp32.onnx")
    quantize_int8(tmp_path / "qat-fp32.onnx", tmp_path / "qat-int8.onnx", calibration, weight_bits=7)
    simulated = copy.deepcopy(model)
    add_fake_quant(simulated, weight_bits=7)
    calibrate(simulated, calibration)
    everything = np.concatenate([s.images[:] for s in (train, val, test)])
    torch_top1 = predict_logits(simulated, to_tensor(everything)).argmax(1).numpy()
    onnx_top1 = predict(session(tmp_path / "qat-int8.onnx"), everything).argmax(1)
    assert (torch_top1 == onnx_top1).mean() >= 0.99


def test_a_folded_model_computes_what_the_model_with_batchnorm_did(trained, splits) -> None:
    _, val, _ = splits
    folded = copy.deepcopy(trained)
    assert fold_batchnorm(folded, SIZE) == sum(isinstance(m, torch.nn.BatchNorm2d) for m in trained.modules())
    x = to_tensor(val.images[:])
    torch.testing.assert_close(predict_logits(folded, x), predict_logits(trained, x), atol=1e-4, rtol=1e-4)
