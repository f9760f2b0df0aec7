"""Section 2d of benchmarks/compression.py: int8 of a model the pipeline trained, read from its repository."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from _compression_rows import onnx_row, print_table

from vision.compression.onnx import export_onnx
from vision.compression.pruning import measure_size
from vision.compression.qat import quantization_aware_finetune
from vision.compression.quantize import quantize_int8
from vision.data.dataset import SplitData


def trained_section(repo: Path, project: str) -> None:
    """Section 2d: int8 of a model the pipeline trained, read from its repository (the minimal fabric spec's, kept
    by `python benchmarks/transfer.py --minimal --keep DIR`), where int8 lost points: calibrated on the training
    split's first 200 images (as the stages did: one class, for a split listed class by class) and on 200 spread
    over it; 16-bit activations or weights, to tell which part loses; and the quantization-aware candidate as the
    compress stage trains it (the spec's train settings, `qat_epochs`, the target's weight bits)."""
    import numpy as np
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from compiler.load import load_spec
    from core.profiles import PROFILES
    from vision.compression.quantize import _Calibration
    from vision.data.dataset import load_splits
    from vision.training.model import load_model

    spec = load_spec(repo / "specs" / f"{project}.yaml", repo).spec
    trained, config = load_model(repo / "models" / project / "train")
    size = int(config.input_size_px)
    splits = load_splits(repo / "data" / project / "ingest", repo / "data" / project / "prune" / "split.csv",
                         list(config.classes), size)
    train, val, test = splits.train, splits.val, splits.test
    bits = PROFILES[spec.target.hardware].int8_weight_bits
    macs = measure_size(trained, size).macs
    first, spread = train.take(range(min(200, len(train.labels)))), train.sample(200)

    def classes_in(sample: SplitData) -> str:
        return "/".join(str(n) for n in np.bincount(sample.labels, minlength=len(config.classes)))

    with tempfile.TemporaryDirectory(prefix="autodl-compress-trained-") as folder:
        work = Path(folder)
        export_onnx(trained, size, work / "fp32.onnx")
        rows = [onnx_row("fp32", work / "fp32.onnx", macs, val, test, size)]
        for weight_bits in (8, bits) if bits != 8 else (8,):
            for label, sample in (("first 200", first), ("200 spread", spread)):
                out = work / f"int8-{weight_bits}-{label.replace(' ', '-')}.onnx"
                quantize_int8(work / "fp32.onnx", out, sample.images, weight_bits=weight_bits)
                rows.append(onnx_row(f"int8 PTQ, {weight_bits}-bit, {label}", out, macs, val, test, size,
                                     f"calibration images per class {classes_in(sample)}"))
        quant_pre_process(str(work / "fp32.onnx"), str(work / "prepared.onnx"), skip_symbolic_shape=True)
        for label, activations, weights in (("16-bit activations", QuantType.QUInt16, QuantType.QInt8),
                                            ("16-bit weights", QuantType.QUInt8, QuantType.QInt16)):
            out = work / f"{label.replace(' ', '-')}.onnx"
            quantize_static(str(work / "prepared.onnx"), str(out), _Calibration(spread.images),
                            quant_format=QuantFormat.QDQ, per_channel=True, activation_type=activations,
                            weight_type=weights)  # no int16 kernels here: a diagnosis, not a deployable file
            rows.append(onnx_row(f"PTQ, {label}", out, macs, val, test, size, "the other part 8-bit"))
        started = time.perf_counter()
        epochs = spec.compress.quantization.qat_epochs
        qat = quantization_aware_finetune(trained, train, val, spec.train.model_copy(update={"epochs": epochs}),
                                          spec.seed, bits, spec.augment)
        export_onnx(qat, size, work / "qat-fp32.onnx")
        quantize_int8(work / "qat-fp32.onnx", work / "qat-int8.onnx", spread.images, weight_bits=bits)
        qat_fp32 = onnx_row("QAT, fp32", work / "qat-fp32.onnx", macs, val, test, size)
        rows += [qat_fp32, onnx_row(f"int8 QAT, {bits}-bit, 200 spread", work / "qat-int8.onnx", macs, val, test,
                                    size, f"{epochs} epoch(s) in {time.perf_counter() - started:.0f} s")]
    print_table(f"2d. {project} as the pipeline trained it ({repo}): {config.backbone} at {size} px, "
                f"{len(train.labels)} training images", rows, macs)
    fp32, int8 = rows[0], [r for r in rows if r.variant.startswith("int8")]
    best = max(int8, key=lambda r: r.val_accuracy)  # chosen on validation, as the export stage chooses
    print(f"\n{project} int8 target (within 1 point of the trained fp32's test accuracy): {best.variant} "
          f"{best.test_accuracy:.4f} vs fp32 {fp32.test_accuracy:.4f}: "
          f"{'met' if fp32.test_accuracy - best.test_accuracy <= 0.01 else 'MISSED'}; PTQ alone: "
          f"{max((r for r in int8 if 'PTQ' in r.variant), key=lambda r: r.val_accuracy).test_accuracy:.4f}")
