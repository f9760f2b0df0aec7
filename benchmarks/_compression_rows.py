"""The rows of benchmarks/compression.py's tables: one variant measured (MACs, accuracy, ONNX Runtime latency), the
int8 and pruning variants of a classifier, and the printed table (imported by the benchmark's sections)."""

from __future__ import annotations

import copy
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from core.spec.deployment import CompressSection, SparseTraining
from core.spec.training import TrainSection
from vision.compression.onnx import export_onnx, latency_ms, onnx_accuracy, session
from vision.compression.pruning import Size, measure_size, prune_to_budget
from vision.compression.qat import quantization_aware_finetune
from vision.compression.quantize import Int8Plan, quantize_int8, quantize_within_floor
from vision.compression.sparsity import prune_zeroed, sparse_train
from vision.data.dataset import SplitData
from vision.training.fit import Teacher, fit

RATIOS = (1.5, 2.0, 3.0)


@dataclass(frozen=True)
class Row:
    variant: str
    macs: int
    val_accuracy: float
    test_accuracy: float
    ms_1_thread: float | None = None
    ms_2_threads: float | None = None
    note: str = ""


def onnx_row(name: str, path: Path, macs: int, val: SplitData, test: SplitData, size: int, note: str = "") -> Row:
    sess = session(path)
    return Row(name, macs, onnx_accuracy(sess, val), onnx_accuracy(sess, test), latency_ms(path, size, 1),
               latency_ms(path, size, 2), note)


def torch_row(name: str, model: torch.nn.Module, size: int, val: SplitData, test: SplitData, note: str = "") -> Row:
    """A torch candidate exported to fp32 ONNX and measured like the deployable file."""
    with tempfile.TemporaryDirectory(prefix="autodl-bench-row-") as folder:
        path = Path(folder) / "model.onnx"
        export_onnx(model, size, path)
        return onnx_row(name, path, measure_size(model, size).macs, val, test, size, note)


# Eight parameters: the model, its three splits, and how the quantization-aware fine-tuning trains.
def quantization_rows(trained: torch.nn.Module, train: SplitData, val: SplitData, test: SplitData,
                      training: TrainSection, seed: int, qat_epochs: int, work: Path) -> list[Row]:
    size, macs = int(train.images.shape[1]), measure_size(trained, int(train.images.shape[1])).macs
    calibration = train.sample(200).images
    fp32 = work / "fp32.onnx"
    export_onnx(trained, size, fp32)
    rows = [onnx_row("fp32", fp32, macs, val, test, size)]
    for bits in (8, 7):
        quantize_int8(fp32, work / f"int8-{bits}.onnx", calibration, weight_bits=bits)
        rows.append(onnx_row(f"int8 PTQ, {bits}-bit weights", work / f"int8-{bits}.onnx", macs, val, test, size))
    started = time.perf_counter()
    plan = Int8Plan(7, floor=rows[0].val_accuracy, max_fp32_layers=8, sensitivity_images=128)
    kept = quantize_within_floor(fp32, work / "int8-kept.onnx", calibration, val, plan)
    rows.append(onnx_row("int8 PTQ + fp32 layers", work / "int8-kept.onnx", macs, val, test, size,
                         f"{len(kept.fp32_layers)} layer(s) fp32 (aiming at fp32's val accuracy; tried "
                         f"{', '.join(f'{n}: {a:.4f}' for n, a in kept.tried)}) in "
                         f"{time.perf_counter() - started:.0f} s"))
    started = time.perf_counter()
    qat = quantization_aware_finetune(trained, train, val, training.model_copy(update={"epochs": qat_epochs}), seed,
                                      weight_bits=7)
    export_onnx(qat, size, work / "qat-fp32.onnx")
    quantize_int8(work / "qat-fp32.onnx", work / "qat-int8.onnx", calibration, weight_bits=7)
    rows.append(onnx_row("int8 QAT, 7-bit weights", work / "qat-int8.onnx", macs, val, test, size,
                         f"{qat_epochs} epoch(s) in {time.perf_counter() - started:.0f} s"))
    return rows


# Eight parameters: the model, its three splits, and the settings every pruning track shares.
def pruning_rows(trained: torch.nn.Module, train: SplitData, val: SplitData, test: SplitData, finetune: TrainSection,
                 settings: CompressSection, seed: int, sparsities: tuple[SparseTraining, ...]) -> list[Row]:
    size = int(train.images.shape[1])
    base = measure_size(trained, size)
    rows = []
    teacher = Teacher(trained.eval())
    for label, allocation, guide in (("uniform", "uniform", None), ("uniform + distillation", "uniform", teacher),
                                     ("global + distillation", "global", teacher)):
        caught: dict[float, tuple[torch.nn.Module, int]] = {}
        rounds = [0]

        def within(model: torch.nn.Module, size_now: Size, caught=caught, rounds=rounds) -> bool:
            rounds[0] += 1
            for ratio in RATIOS:
                if ratio not in caught and base.macs / size_now.macs >= ratio:
                    caught[ratio] = (copy.deepcopy(model), rounds[0])
            return len(caught) == len(RATIOS)

        started = time.perf_counter()
        prune_to_budget(trained, train, val, settings.model_copy(update={"allocation": allocation}), finetune, seed,
                        within, floor=0.0, teacher=guide)
        spent = time.perf_counter() - started
        for ratio in RATIOS:
            if ratio in caught:
                model, at = caught[ratio]
                rows.append(torch_row(f"pruned {ratio:g}x, {label}", model, size, val, test,
                                      f"round {at} of {settings.prune_steps}; track {spent:.0f} s"))
            else:
                rows.append(Row(f"pruned {ratio:g}x, {label}", 0, float("nan"), float("nan"),
                                note=f"not reached in {settings.prune_steps} rounds"))
    for sparsity in sparsities:
        started = time.perf_counter()
        sparse = prune_zeroed(sparse_train(trained, train, val, finetune, sparsity, seed), size, sparsity.zero_below)
        fit(sparse.model, train, val, finetune, seed + 1, teacher=teacher, progress=False)
        rows.append(torch_row(f"sparse training (reg {sparsity.regularisation:g}), pruned", sparse.model, size, val,
                              test, f"{sum(sparse.removed.values())} channels removed, "
                              f"{time.perf_counter() - started:.0f} s"))
    return rows


def print_table(title: str, rows: list[Row], base_macs: int) -> None:
    print(f"\n{title}")
    print(f"{'variant':<40} {'MACs':>13} {'fewer':>6} {'val acc':>8} {'test acc':>8} {'ms 1 thr':>9} {'ms 2 thr':>9}"
          "  note")
    for r in rows:
        fewer = f"{base_macs / r.macs:.2f}x" if r.macs else ""
        ms1 = "" if r.ms_1_thread is None else f"{r.ms_1_thread:.3f}"
        ms2 = "" if r.ms_2_threads is None else f"{r.ms_2_threads:.3f}"
        print(f"{r.variant:<40} {r.macs:>13,} {fewer:>6} {r.val_accuracy:>8.4f} {r.test_accuracy:>8.4f} {ms1:>9} "
              f"{ms2:>9}  {r.note}", flush=True)
