"""Compression side by side: what each method buys on the digits ResNet-10t and on EfficientNet-Lite0 at 224 px.

1. The default digits spec as the pipeline runs it: the compress and export
   stages' cores on the trained model of the last `dvc repro` (run `make demo`
   first), the variant table, and the chosen model against the trained one
   (target >= 2x fewer MACs at <= 0.5 point test drop, >= 4x faster than torch
   eager fp32).
2. For each model (the digits one, and Lite0 with its offline ImageNet weights
   fine-tuned at 224 px on the texture task of benchmarks/_fabric.py, near 99% like
   a real set it would be deployed on), one table:
   fp32 ONNX; int8 with 8-bit weights (the recipe before), with 7-bit weights
   (what cpu-x86 targets get), with the most sensitive layers kept fp32, and
   after quantization-aware fine-tuning; then structured pruning caught at
   1.5x, 2x and 3x fewer MACs along one track of small rounds each (uniform,
   uniform with distillation, global allocation with distillation), and sparse
   training with its zeroed groups removed. Validation and test accuracy, and
   batch-1 latency with ONNX Runtime on 1 and 2 threads.
3. The demo detector of the last `dvc repro` (specs/digits-on-photos.yaml): its deployable file against the
   trained detector in torch eager fp32 on the test split: MACs, mAP50-95 and batch-1 latency with decoding and
   NMS (targets >= 2x fewer MACs at <= 1 point mAP50-95 drop, >= 4x faster served).
4. Students of that detector (compress.student_head): a narrower feature pyramid and fewer head convolutions on
   the trained detector's own backbone, distilled from it for train.epochs as the compress stage does, then int8
   within the spec's floor as the export stage does; beside the trained detector in torch eager fp32 and its own
   int8 file (targets >= 1.5x fewer MACs within 1 point of test mAP50-95, >= 3x faster than torch eager).
2c. The small-defect fabric task of benchmarks/_fabric.py at 256 px (1,400 / 300 / 300 images), Lite0 with the
   first 4 levels frozen, 8 epochs: fp32 beside int8 with 8- and 7-bit weights, with sensitive layers fp32, and
   after quantization-aware fine-tuning (where int8 lost points on a VNNI CPU).
2d. (with --trained-repo DIR) A model the pipeline trained, read from its repository (the minimal fabric spec's
   from `benchmarks/transfer.py --minimal --keep DIR`): int8 calibrated on the split's first 200 images and on
   200 spread over it, 16-bit activations or weights (which part loses), and the quantization-aware candidate.
Targets: Lite0 int8 within 1 point of fp32 (textures and fabric); Lite0 >= 2x fewer MACs within 1 point.
Usage: python benchmarks/compression.py [--skip-stages] [--skip-digits] [--skip-lite0] [--skip-fabric]
       [--skip-detector] [--skip-students] [--students 64x1,64x1@40,32x2] [--images N] [--fabric-images N]
       [--trained-repo DIR [--trained-project NAME]]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

from _compression_rows import print_table, pruning_rows, quantization_rows
from _detector_compression import detector_section, student_arm, student_section
from _digits import REPO
from _trained_int8 import trained_section

from core.spec.deployment import CompressSection, SparseTraining
from core.spec.training import TrainSection
from vision.compression.onnx import latency_ms
from vision.compression.quantize import Int8Plan
from vision.training.fit import fit
from vision.training.model import accuracy


def stage_section(spec_path: Path) -> None:
    """Section 1: the compress and export stages on the default spec, as the pipeline runs them."""
    from compiler.load import load_spec
    from core.profiles import PROFILES
    from stages.compress import compress, describe
    from stages.export import ClassifierExport
    from stages.exporting import build_variants
    from vision.compression.onnx import cpu_description, torch_latency_ms
    from vision.compression.variants import choose, format_table
    from vision.data.dataset import load_splits
    from vision.tasks.classification import SCORING
    from vision.training.model import load_model

    spec = load_spec(spec_path, REPO).spec
    model_dir = REPO / "models" / spec.name / "train"
    if not (model_dir / "model.json").is_file():
        raise SystemExit(f"{model_dir} is missing: run `make demo` (or `dvc repro {spec.name}-train`) first")
    trained, config = load_model(model_dir)
    ingest, split_csv = REPO / "data" / spec.name / "ingest", REPO / "data" / spec.name / "prune" / "split.csv"
    splits = load_splits(ingest, split_csv, config.classes, config.input_size_px)
    train, val, test = splits.train, splits.val, splits.test
    profile = PROFILES[spec.target.hardware]
    with tempfile.TemporaryDirectory(prefix="autodl-compress-bench-") as folder:
        work = Path(folder)
        models, tracks = compress(trained, config, splits, spec.compress, spec.train, spec.augment, spec.seed, work,
                                  profile.int8_weight_bits if profile.precision == "int8" else None)
        described = describe(models, config, tracks, spec.compress.student, val, test, work)
        baseline = float(described["trained"]["torch_val_accuracy"])
        plan = Int8Plan.from_spec(spec.compress.quantization, profile.int8_weight_bits,
                                  baseline - spec.compress.budget.max_accuracy_drop)
        calibration = train.sample(spec.compress.calibration_images)
        measuring = ClassifierExport(trained, model_dir, described["trained"], asdict(config), val, test,
                                     calibration, plan)
        rows = build_variants(work, described, measuring, work,
                              profile.precision if "quantize" in spec.compress.methods else "fp32")
        chosen, reason = choose(rows, spec.compress.budget, baseline, SCORING)
        trained_fp32 = next(r for r in rows if r.variant == "trained-fp32")
        size = config.input_size_px
        torch_ms, onnx_ms = [], []
        for _ in range(3):  # interleaved, so both see the same machine state
            torch_ms.append(torch_latency_ms(trained, size, threads=1))
            onnx_ms.append(latency_ms(chosen.path, size, threads=1))
        torch2, onnx2 = torch_latency_ms(trained, size, threads=2), latency_ms(chosen.path, size, threads=2)
    cpu = cpu_description()
    print(f"\n1. Variants of {spec.name} as the stages build them ({spec.target.hardware} target; measured on "
          f"{cpu['cpu']}, {cpu['cores']} cores, ISA {', '.join(cpu['isa']) or 'baseline'}, "
          f"VNNI {'yes' if cpu['vnni'] else 'no'})")
    print(format_table(rows, SCORING))
    print(f"\nchosen: {reason}")
    macs_ratio = trained_fp32.macs / chosen.macs
    drop = 100 * (trained_fp32.figures["test_accuracy"] - chosen.figures["test_accuracy"])
    print(f"\n{'MACs reduction (chosen vs trained)':<46} {macs_ratio:6.2f}x")
    before, after = trained_fp32.figures["test_accuracy"], chosen.figures["test_accuracy"]
    print(f"{'test accuracy change (points)':<46} {-drop:+6.2f}   (trained {before:.4f}, chosen {after:.4f}; "
          f"target >= 2x at <= 0.5 pt drop: "
          f"{'met' if macs_ratio >= 2 and drop <= 0.5 else 'MISSED'})")
    speedup = statistics.median(torch_ms) / statistics.median(onnx_ms)
    print(f"{'batch-1 latency, torch eager fp32 (1 thread)':<46} {statistics.median(torch_ms):6.3f} ms")
    print(f"{'batch-1 latency, deployable ONNX (1 thread)':<46} {statistics.median(onnx_ms):6.3f} ms")
    print(f"{'speed-up (target >= 4x)':<46} {speedup:6.1f}x   ({'met' if speedup >= 4 else 'MISSED'}); "
          f"with 2 threads {torch2 / onnx2:.1f}x ({torch2:.3f} vs {onnx2:.3f} ms)", flush=True)


def digits_section(spec_path: Path) -> None:
    """Section 2a: every method on the digits model of the last `dvc repro`, with its spec's settings."""
    from compiler.load import load_spec
    from vision.data.dataset import load_splits
    from vision.training.model import load_model

    spec = load_spec(spec_path, REPO).spec
    trained, config = load_model(REPO / "models" / spec.name / "train")
    ingest, split_csv = REPO / "data" / spec.name / "ingest", REPO / "data" / spec.name / "prune" / "split.csv"
    splits = load_splits(ingest, split_csv, config.classes, config.input_size_px)
    finetune = spec.train.model_copy(update={"epochs": spec.compress.finetune_epochs, "hpo": None,
                                             "early_stopping_patience": 0})
    with tempfile.TemporaryDirectory(prefix="autodl-compress-bench-") as folder:
        rows = quantization_rows(trained, splits.train, splits.val, splits.test, spec.train, spec.seed,
                                 spec.compress.quantization.qat_epochs, Path(folder))
    settings = spec.compress.model_copy(update={"prune_steps": 8, "max_prune_ratio": 0.5})
    rows += pruning_rows(trained, splits.train, splits.val, splits.test, finetune, settings, spec.seed,
                         (SparseTraining(regularisation=15.0), SparseTraining(regularisation=20.0)))
    print_table(f"2a. {spec.name}: {config.backbone} at {config.input_size_px} px, {len(splits.train.labels)} "
                f"training images", rows, rows[0].macs)


def lite0_section(images_in_all: int) -> None:
    """Section 2b: Lite0 with ImageNet weights, fine-tuned at 224 px on the texture task of _fabric.py."""
    import transfer
    from _fabric import TEXTURES, textures

    images, labels = textures(images_in_all)
    train, val, test = transfer._splits(images, labels, 224, classes=TEXTURES)
    training = TrainSection(epochs=3, batch_size=32)
    started = time.perf_counter()
    trained = fit(transfer._lite0(224, TEXTURES), train, val, training, 0, progress=False).model
    print(f"\nLite0 fine-tuned at 224 px in {time.perf_counter() - started:.0f} s: val accuracy "
          f"{accuracy(trained, val):.4f}, test accuracy {accuracy(trained, test):.4f}", flush=True)
    with tempfile.TemporaryDirectory(prefix="autodl-compress-bench-") as folder:
        rows = quantization_rows(trained, train, val, test, training, 0, 2, Path(folder))
    print_table("2b-quantization (so far)", rows, rows[0].macs)
    finetune = training.model_copy(update={"epochs": 2})
    settings = CompressSection(prune_steps=6, max_prune_ratio=0.5, finetune_epochs=2)
    rows += pruning_rows(trained, train, val, test, finetune, settings, 0,
                         (SparseTraining(regularisation=20.0), SparseTraining(regularisation=40.0)))
    print_table(f"2b. texture task: tf_efficientnet_lite0 (ImageNet weights) at 224 px, {len(train.labels)} "
                "training images", rows, rows[0].macs)
    fp32, best_int8 = rows[0], max(rows[1:5], key=lambda r: r.val_accuracy)
    two_x = [r for r in rows if r.variant.startswith("pruned 2x") and r.macs]
    print(f"\nLite0 int8 target (within 1 point of fp32 test accuracy): best int8 {best_int8.variant} "
          f"{best_int8.test_accuracy:.4f} vs fp32 {fp32.test_accuracy:.4f}: "
          f"{'met' if fp32.test_accuracy - best_int8.test_accuracy <= 0.01 else 'MISSED'}")
    if two_x:
        best_pruned = max(two_x, key=lambda r: r.test_accuracy)
        print(f"Lite0 pruning target (>= 2x fewer MACs within 1 point): {best_pruned.variant} "
              f"{best_pruned.test_accuracy:.4f} vs fp32 {fp32.test_accuracy:.4f}: "
              f"{'met' if fp32.test_accuracy - best_pruned.test_accuracy <= 0.01 else 'MISSED'}")


def fabric_section(images_in_all: int) -> None:
    """Section 2c: the small-defect fabric task at its native 256 px, trained as a user first trains it (Lite0 from
    ImageNet weights, the first 4 levels frozen, 8 epochs): where int8 loses points although every x86 CPU here
    runs VNNI (no saturation). Prints fp32 beside every int8 recipe."""
    import transfer
    from _fabric import CLASSES, fabric

    from vision.training.modes import fit_with_mode

    quarter = images_in_all // 4
    images, labels = fabric({"nominal": images_in_all - 2 * quarter, "local_defect": quarter,
                             "global_defect": quarter})
    train, val, test = transfer._splits(images, labels, 256)
    training = TrainSection(epochs=8, batch_size=32, freeze=4)
    started = time.perf_counter()
    trained = fit_with_mode(transfer._lite0(256), train, val, training, 0, progress=False).model
    print(f"\nfabric: Lite0 at 256 px, 4 levels frozen, 8 epochs, in {time.perf_counter() - started:.0f} s: val "
          f"accuracy {accuracy(trained, val):.4f}, test accuracy {accuracy(trained, test):.4f}", flush=True)
    with tempfile.TemporaryDirectory(prefix="autodl-compress-fabric-") as folder:
        rows = quantization_rows(trained, train, val, test, training.model_copy(update={"freeze": 0}), 0, 2,
                                 Path(folder))
    print_table(f"2c. fabric ({', '.join(CLASSES)}): tf_efficientnet_lite0 at 256 px, {len(train.labels)} training "
                "images", rows, rows[0].macs)
    fp32, qat = rows[0], rows[-1]
    best_ptq = max(rows[1:-1], key=lambda r: r.val_accuracy)  # int8 of the trained weights, as chosen on validation
    print(f"\nfabric int8 target (within 1 point of fp32 test accuracy): {best_ptq.variant} "
          f"{best_ptq.test_accuracy:.4f} vs fp32 {fp32.test_accuracy:.4f}: "
          f"{'met' if fp32.test_accuracy - best_ptq.test_accuracy <= 0.01 else 'MISSED'}; the quantization-aware "
          f"candidate's int8 {qat.test_accuracy:.4f} (its two epochs fine-tune every layer, so it may beat fp32)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", type=Path, default=REPO / "specs" / "digits.yaml")
    parser.add_argument("--skip-stages", action="store_true")
    parser.add_argument("--skip-digits", action="store_true")
    parser.add_argument("--skip-lite0", action="store_true")
    parser.add_argument("--skip-fabric", action="store_true")
    parser.add_argument("--fabric-images", type=int, default=2000, help="fabric images in all (half nominal)")
    parser.add_argument("--trained-repo", type=Path, help="section 2d: a repository whose pipeline trained a model "
                        "(benchmarks/transfer.py --minimal --keep DIR)")
    parser.add_argument("--trained-project", default="fabric", help="section 2d: the project in --trained-repo")
    parser.add_argument("--images", type=int, default=900, help="texture images in all (a third per class)")
    parser.add_argument("--detection-spec", type=Path, default=REPO / "specs" / "digits-on-photos.yaml")
    parser.add_argument("--skip-detector", action="store_true")
    parser.add_argument("--skip-students", action="store_true")
    parser.add_argument("--students", default="64x1,32x2",
                        help="students as <pyramid channels>x<head convolutions>[@<epochs>] (default epochs: "
                             "the spec's train.epochs), comma-separated")
    args = parser.parse_args()
    logging.getLogger("lightning").setLevel(logging.ERROR)
    if not args.skip_stages:
        stage_section(args.spec)
    if not args.skip_digits:
        digits_section(args.spec)
    if not args.skip_lite0:
        lite0_section(args.images)
    if not args.skip_fabric:
        fabric_section(args.fabric_images)
    if args.trained_repo:
        trained_section(args.trained_repo.resolve(), args.trained_project)
    if not args.skip_detector:
        detector_section(args.detection_spec)
    if not args.skip_students:
        student_section(args.detection_spec, [student_arm(arm) for arm in args.students.split(",")])


if __name__ == "__main__":
    main()
