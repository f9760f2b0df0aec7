"""Compression on the default digits spec: what the chosen deployable model gains and costs.

Runs the compress and export stages' cores on the trained model of the last
`dvc repro` (run `make demo` first), then prints the variant table and, for the
chosen model against the trained one: MACs reduction and test-accuracy change
(target >= 2x at <= 0.5 point drop), and batch-1 latency of the deployable ONNX
against torch eager fp32 of the unpruned model, timed side by side (target >= 4x).
Usage: python benchmarks/compression.py [--spec specs/digits.yaml]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
from pathlib import Path

from _digits import REPO


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", type=Path, default=REPO / "specs" / "digits.yaml")
    args = parser.parse_args()
    logging.getLogger("lightning").setLevel(logging.ERROR)

    from compiler.load import load_spec
    from core.profiles import PROFILES
    from stages.compress import compress, describe
    from stages.export import build_variants, choose, format_table
    from vision.compression.onnx import cpu_description, latency_ms, torch_latency_ms
    from vision.data.dataset import load_splits
    from vision.training.model import load_model

    spec = load_spec(args.spec, REPO).spec
    model_dir = REPO / "models" / spec.name / "train"
    if not (model_dir / "model.json").is_file():
        raise SystemExit(f"{model_dir} is missing: run `make demo` (or `dvc repro {spec.name}-train`) first")
    trained, config = load_model(model_dir)
    ingest, split_csv = REPO / "data" / spec.name / "ingest", REPO / "data" / spec.name / "prune" / "split.csv"
    splits = load_splits(ingest, split_csv, config.classes, config.input_size_px)
    train, val, test = splits.train, splits.val, splits.test
    with tempfile.TemporaryDirectory(prefix="autodl-compress-bench-") as folder:
        work = Path(folder)
        models, tracks = compress(trained, config, splits, spec.compress, spec.train, spec.augment, spec.seed, work)
        described = describe(models, config, tracks, spec.compress.student, val, test, work)
        rows = build_variants(work, described, config.input_size_px, model_dir, work,
                              PROFILES[spec.target.hardware].precision,
                              "quantize" in spec.compress.methods, train, val, test)
        baseline = float(described["trained"]["torch_val_accuracy"])
        chosen, reason = choose(rows, spec.compress.budget, baseline)
        trained_fp32 = next(r for r in rows if r.variant == "trained-fp32")
        size = config.input_size_px
        torch_ms, onnx_ms = [], []
        for _ in range(3):  # interleaved, so both see the same machine state
            torch_ms.append(torch_latency_ms(trained, size, threads=1))
            onnx_ms.append(latency_ms(chosen.path, size, threads=1))
        torch2, onnx2 = torch_latency_ms(trained, size, threads=2), latency_ms(chosen.path, size, threads=2)

    cpu = cpu_description()
    print(f"\nVariants of {spec.name} ({spec.target.hardware} target; measured on {cpu['cpu']}, "
          f"{cpu['cores']} cores, ISA {', '.join(cpu['isa']) or 'baseline'}, VNNI {'yes' if cpu['vnni'] else 'no'})")
    print(format_table(rows))
    print(f"\nchosen: {reason}")
    macs_ratio = trained_fp32.macs / chosen.macs
    drop = 100 * (trained_fp32.test_accuracy - chosen.test_accuracy)
    print(f"\n{'MACs reduction (chosen vs trained)':<46} {macs_ratio:6.2f}x")
    print(f"{'test accuracy change (points)':<46} {-drop:+6.2f}   (trained {trained_fp32.test_accuracy:.4f}, "
          f"chosen {chosen.test_accuracy:.4f}; target >= 2x at <= 0.5 pt drop: "
          f"{'met' if macs_ratio >= 2 and drop <= 0.5 else 'MISSED'})")
    speedup = statistics.median(torch_ms) / statistics.median(onnx_ms)
    print(f"{'batch-1 latency, torch eager fp32 (1 thread)':<46} {statistics.median(torch_ms):6.3f} ms")
    print(f"{'batch-1 latency, deployable ONNX (1 thread)':<46} {statistics.median(onnx_ms):6.3f} ms")
    print(f"{'speed-up (target >= 4x)':<46} {speedup:6.1f}x   ({'met' if speedup >= 4 else 'MISSED'}); "
          f"with 2 threads {torch2 / onnx2:.1f}x ({torch2:.3f} vs {onnx2:.3f} ms)")


if __name__ == "__main__":
    main()
