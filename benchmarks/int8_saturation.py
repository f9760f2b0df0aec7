"""Why 8-bit int8 weights lose accuracy on x86 CPUs without VNNI, measured on real activations.

Without VNNI, ONNX Runtime's uint8 x int8 convolution kernels multiply with
AVX2's `vpmaddubsw`: each pair of neighbouring products along the reduction
axis is added in int16 and saturates at +-32767 before the int32 accumulation.
With 8-bit weights one pair can reach 255 x 127 x 2 = 64,770; with 7-bit
weights (at most 64) 255 x 64 x 2 = 32,640 always fits. On a VNNI CPU the
products go straight to int32, so the same file is exact there: that is why a
model can lose many points on one machine and none on another.

This script takes the int8 files the export stage would write (8-bit and 7-bit
weights) for EfficientNet-Lite0 fine-tuned at 224 px on the texture task of
benchmarks/_fabric.py (the model benchmarks/compression.py compresses), reads
every quantized convolution's real uint8 input (ONNX Runtime's own
QuantizeLinear outputs) and int8 weights, and counts the pair sums that would
saturate, in the channels-last reduction order ONNX Runtime's x86 int8
convolutions use (kernel row, kernel column, channel). Depthwise convolutions are
left out: their kernel accumulates in int32 directly.
Usage: python benchmarks/int8_saturation.py [--images 16]
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from _digits import REPO  # noqa: F401  (puts the repository on the import path)
from onnx import helper, numpy_helper

from core.spec.training import TrainSection
from vision.compression.onnx import INPUT, export_onnx, onnx_accuracy, session
from vision.compression.quantize import quantize_int8
from vision.data.dataset import to_tensor
from vision.training.fit import fit

INT16_MAX = 32767


def _attribute(node: onnx.NodeProto, name: str, default: list[int]) -> list[int]:
    for attribute in node.attribute:
        if attribute.name == name:
            return list(attribute.ints) if attribute.ints else [attribute.i]
    return default


def conv_inputs(path: Path) -> list[dict]:
    """Each non-depthwise Conv of a QDQ file: its uint8 input tensor's name and zero point, its int8 weights,
    and its geometry."""
    model = onnx.load(str(path))
    init = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    producer = {output: node for node in model.graph.node for output in node.output}
    convs = []
    for node in model.graph.node:
        if node.op_type != "Conv" or _attribute(node, "group", [1])[0] != 1:
            continue
        x_dq, w_dq = producer.get(node.input[0]), producer.get(node.input[1])
        if not (x_dq and w_dq and x_dq.op_type == "DequantizeLinear" and w_dq.op_type == "DequantizeLinear"):
            continue
        weights = init.get(w_dq.input[0])
        if weights is None or weights.dtype != np.int8:
            continue
        convs.append({"name": node.name, "input": x_dq.input[0], "zero": int(init[x_dq.input[2]]),
                      "weights": weights.astype(np.int32), "strides": _attribute(node, "strides", [1, 1]),
                      "pads": _attribute(node, "pads", [0, 0, 0, 0]),
                      "dilations": _attribute(node, "dilations", [1, 1])})
    return convs


def saturated_share(path: Path, images: np.ndarray) -> tuple[float, float, int]:
    """(share of pair sums that saturate, share of output values with at least one, convolutions checked)."""
    convs = conv_inputs(path)
    model = onnx.load(str(path))
    for conv in convs:
        model.graph.output.append(helper.make_tensor_value_info(conv["input"], onnx.TensorProto.UINT8, None))
    with tempfile.TemporaryDirectory() as folder:
        probe = Path(folder) / "probe.onnx"
        onnx.save(model, str(probe))
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # keep the QDQ tensors
        sess = ort.InferenceSession(str(probe), options, providers=["CPUExecutionProvider"])
        outputs = sess.run([c["input"] for c in convs], {INPUT: to_tensor(images).numpy()})
    pairs = saturated = values = hit = 0
    for conv, x in zip(convs, outputs, strict=True):
        w = torch.from_numpy(conv["weights"])  # [out, in, kh, kw]
        out_channels, in_channels, kh, kw = w.shape
        top, left, bottom, right = conv["pads"][0], conv["pads"][1], conv["pads"][2], conv["pads"][3]
        padded = torch.nn.functional.pad(torch.from_numpy(x.astype(np.int32)), (left, right, top, bottom),
                                         value=conv["zero"])  # ONNX Runtime pads uint8 with the zero point
        columns = torch.nn.functional.unfold(padded.float(), (kh, kw), dilation=conv["dilations"],
                                             stride=conv["strides"])  # [N, in*kh*kw, L], order (c, kh, kw)
        n, _, positions = columns.shape
        # channels-last reduction order (kh, kw, c), the order of ONNX Runtime's x86 NHWC int8 convolution
        columns = columns.view(n, in_channels, kh * kw, positions).transpose(1, 2).reshape(n, -1, positions)
        flat_w = w.permute(0, 2, 3, 1).reshape(out_channels, -1).float()
        k = flat_w.shape[1] - flat_w.shape[1] % 2
        for image in range(n):
            products = flat_w[:, :k, None] * columns[image, None, :k, :]  # [out, K, L]
            pair = products[:, 0::2, :] + products[:, 1::2, :]
            over = pair.abs() > INT16_MAX
            pairs += pair.numel()
            saturated += int(over.sum())
            values += out_channels * positions
            hit += int(over.any(dim=1).sum())
    return saturated / max(pairs, 1), hit / max(values, 1), len(convs)


def main() -> None:
    import transfer
    from _fabric import TEXTURES, textures

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=16, help="validation images whose activations are read")
    args = parser.parse_args()
    logging.getLogger("lightning").setLevel(logging.ERROR)
    images, labels = textures(900)
    train, val, _ = transfer._splits(images, labels, 224, classes=TEXTURES)
    trained = fit(transfer._lite0(224, TEXTURES), train, val, TrainSection(epochs=3, batch_size=32), 0,
                  progress=False).model
    with tempfile.TemporaryDirectory(prefix="autodl-saturation-") as folder:
        work = Path(folder)
        export_onnx(trained, 224, work / "fp32.onnx")
        calibration = train.sample(200).images
        print(f"\nEfficientNet-Lite0 at 224 px, texture task; {args.images} validation images' activations; this CPU: "
              f"{'VNNI' if 'avx512_vnni' in Path('/proc/cpuinfo').read_text() else 'no VNNI'}")
        print(f"{'weights':<8} {'convs':>6} {'pair sums saturating':>21} {'outputs touched':>16} {'val acc here':>13}")
        for bits in (8, 7):
            path = work / f"int8-{bits}.onnx"
            quantize_int8(work / "fp32.onnx", path, calibration, weight_bits=bits)
            pair_share, output_share, convs = saturated_share(path, val.images[: args.images])
            accuracy = onnx_accuracy(session(path), val)
            print(f"{bits}-bit   {convs:>6} {100 * pair_share:>20.3f}% {100 * output_share:>15.2f}% {accuracy:>13.4f}")


if __name__ == "__main__":
    main()
