"""ONNX export, parity, quantization and latency with ONNX Runtime: the deployable model's toolbox.

Everything downstream (dependability, serving) runs the exported file through
ONNX Runtime, so the figures here are the ones the served model has.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch

from vision.data.dataset import to_tensor
from vision.data.streams import Images, batch_for, batches
from vision.tasks.base import Task
from vision.tasks.classification import TASK as CLASSIFICATION

OPSET = 17
INPUT = "input"
OUTPUT, FEATURES = CLASSIFICATION.onnx_outputs


class _LogitsAndFeatures(torch.nn.Module):
    """A timm classifier that also returns its penultimate (pooled) features.

    Feature-space OOD detectors (Mahalanobis, KNN, ViM) need them from the file
    that serves, and the second output costs nothing: the logits are computed
    from it.
    """

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.model.forward_head(self.model.forward_features(x), pre_logits=True)
        return self.model.get_classifier()(features), features


def export_onnx(model: torch.nn.Module, size_px: int, path: Path) -> None:
    """fp32 ONNX with outputs `logits` and `features` and a dynamic batch axis, checked by `onnx.checker`.

    The TorchScript-based exporter, on purpose: it writes the same bytes for the same weights (the
    torch.export-based one, measured with torch 2.14, does not, so every run would change dvc.lock) and
    handles these plain CNNs fully. torch marks it deprecated; its warning is silenced here, not ignored.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", ".*legacy TorchScript-based ONNX export.*", DeprecationWarning)
        warnings.filterwarnings("ignore", "The feature will be removed.*", DeprecationWarning)
        torch.onnx.export(_LogitsAndFeatures(model.eval()).eval(), (torch.zeros(1, 3, size_px, size_px),), str(path),
                          opset_version=OPSET, dynamo=False, input_names=[INPUT], output_names=[OUTPUT, FEATURES],
                          dynamic_axes={INPUT: {0: "batch"}, OUTPUT: {0: "batch"}, FEATURES: {0: "batch"}})
    onnx.checker.check_model(str(path), full_check=True)


def session(path: Path, threads: int = 1) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def predict(sess: ort.InferenceSession, images: Images, batch: int = 256) -> np.ndarray:
    """Logits for uint8 NHWC images, preprocessed exactly as in training."""
    return predict_outputs(sess, images, (OUTPUT,), batch)[0]


def _input_dtype(sess: ort.InferenceSession) -> type:
    return np.float16 if "float16" in sess.get_inputs()[0].type else np.float32


def logits_of(sess: ort.InferenceSession, inputs: np.ndarray) -> np.ndarray:
    """Logits for already normalised NCHW inputs (what perturbation metrics feed), as float32."""
    return np.asarray(sess.run([OUTPUT], {INPUT: inputs.astype(_input_dtype(sess))})[0], np.float32)


def predict_outputs(sess: ort.InferenceSession, images: Images, outputs: tuple[str, ...] = (OUTPUT, FEATURES),
                    batch: int = 256) -> list[np.ndarray]:
    """The named outputs (logits, features) for uint8 NHWC images (an array or a stream read a batch at a
    time), as float32 arrays."""
    dtype = _input_dtype(sess)
    if images.ndim == 4:  # fewer images per run as they grow: ONNX Runtime's arena keeps its peak for good
        batch = batch_for(int(images.shape[1]), int(images.shape[2]), most=batch)
    chunks = [sess.run(list(outputs), {INPUT: to_tensor(chunk).numpy().astype(dtype)})
              for chunk in batches(images, batch)]
    if not chunks:
        return [np.zeros((0, 0), np.float32) for _ in outputs]
    return [np.concatenate([chunk[k] for chunk in chunks]).astype(np.float32) for k in range(len(outputs))]


def onnx_accuracy(sess: ort.InferenceSession, split) -> float:
    """Top-1 accuracy of a session on a split (anything with `images` and `labels`)."""
    return float((predict(sess, split.images).argmax(1) == split.labels).mean())


def onnx_score(sess: ort.InferenceSession, split, task: Task) -> float:
    """The task's score (Task.score) of a session on a split (anything with `images` and `labels`)."""
    return task.score(split.labels, predict(sess, split.images))


@dataclass(frozen=True)
class Parity:
    max_abs_logit_diff: float
    top1_agreement: float


def parity(model: torch.nn.Module, path: Path, images: Images) -> Parity:
    """The exported file against the torch model on the same images."""
    from vision.training.model import predict_images

    expected = predict_images(model, images).numpy()
    got = predict(session(path), images)
    return Parity(float(np.abs(expected - got).max()), float((expected.argmax(1) == got.argmax(1)).mean()))


def convert_fp16(fp32: Path, out: Path) -> None:
    """fp16 weights and compute for GPU targets; inputs and outputs stay fp32 for the server.

    ONNX Runtime's converter inserts the input casts after their consumers; onnx-ir re-sorts the graph
    topologically so the file is valid ONNX.
    """
    import onnx_ir
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = onnx_ir.serde.deserialize_model(convert_float_to_float16(onnx.load(str(fp32)), keep_io_types=True))
    model.graph.sort()
    onnx.save(onnx_ir.serde.serialize_model(model), str(out))
    onnx.checker.check_model(str(out), full_check=True)


def latency_ms(path: Path, size_px: int, threads: int, runs: int = 200, warmup: int = 20) -> float:
    """Median wall time of one batch-1 inference with ONNX Runtime on this machine."""
    sess = session(path, threads)
    x = np.zeros((1, 3, size_px, size_px), np.float32)
    for _ in range(warmup):
        sess.run([OUTPUT], {INPUT: x})
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        sess.run([OUTPUT], {INPUT: x})
        times.append((time.perf_counter() - started) * 1000.0)
    return statistics.median(times)


def onnx_runner(path: Path, size_px: int) -> Callable[[], None]:
    """One single-threaded batch-1 inference of the file, for vision.compression.timing."""
    sess = session(path, 1)
    x = np.zeros((1, 3, size_px, size_px), np.float32)
    return lambda: sess.run([OUTPUT], {INPUT: x}) and None


def torch_runner(model: torch.nn.Module, size_px: int) -> Callable[[], None]:
    """One batch-1 inference in torch eager (call under torch.set_num_threads(1) for a single thread)."""
    x = torch.zeros(1, 3, size_px, size_px)
    model.eval()

    @torch.inference_mode()
    def once() -> None:
        model(x)

    return once


def torch_latency_ms(model: torch.nn.Module, size_px: int, threads: int, runs: int = 200, warmup: int = 20) -> float:
    """The same measurement for torch eager fp32, the baseline the export is compared with."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        x = torch.zeros(1, 3, size_px, size_px)
        with torch.inference_mode():
            model.eval()
            for _ in range(warmup):
                model(x)
            times = []
            for _ in range(runs):
                started = time.perf_counter()
                model(x)
                times.append((time.perf_counter() - started) * 1000.0)
    finally:
        torch.set_num_threads(before)
    return statistics.median(times)


def cpu_description() -> dict[str, object]:
    """The CPU the latencies were measured on, with the instruction sets int8 kernels care about."""
    flags: set[str] = set()
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
            elif line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    wanted = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8", "asimddp")
    return {"cpu": model, "cores": os.cpu_count(), "isa": [flag for flag in wanted if flag in flags],
            "vnni": bool({"avx512_vnni", "avx_vnni"} & flags), "onnxruntime": ort.__version__}
