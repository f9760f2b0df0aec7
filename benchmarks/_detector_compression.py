"""Sections 3 and 4 of benchmarks/compression.py: the demo detector's deployable file, and students distilled
from it, each against the trained detector in torch eager fp32 (run through compression.py)."""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from _digits import REPO

from core.spec.deployment import StudentHead


def detector_section(spec_path: Path) -> None:
    """Section 3: the demo detector of the last `dvc repro`: its deployable file against the trained detector in
    torch eager fp32, measured here side by side on the test split (mAP50-95, MACs, batch-1 latency with decoding
    and NMS on both sides)."""
    from compiler.load import load_spec
    from core.fsutil import read_json
    from runtime.bundle import Preprocessing
    from vision.compression.onnx import cpu_description
    from vision.detection.compression import measure_detector
    from vision.detection.data import load_detection_split
    from vision.detection.metrics import mean_average_precision
    from vision.detection.onnx import latency_ms as detector_ms
    from vision.detection.onnx import letterboxed, run_split, session, split_map
    from vision.detection.onnx import torch_latency_ms as detector_torch_ms
    from vision.detection.predict import predict_split
    from vision.detection.store import load_detector

    spec = load_spec(spec_path, REPO).spec
    export_dir, compress_dir = REPO / "models" / spec.name / "export", REPO / "models" / spec.name / "compress"
    if not (export_dir / "model.onnx").is_file():
        raise SystemExit(f"{export_dir} is missing: run `make demo` first")
    preprocess = Preprocessing.from_dict(read_json(export_dir / "preprocess.json"))
    trained, decoding = load_detector(REPO / "models" / spec.name / "train")
    deployable, _ = load_detector(compress_dir, preprocess.variant.rsplit("-", 1)[0])
    data = REPO / "data" / spec.name
    test = load_detection_split(data / "ingest", data / "ingest" / "boxes.csv", data / "prune" / "split.csv", "test",
                                list(spec.classes))
    torch_map = mean_average_precision(predict_split(trained, test, decoding), test.boxes, test.labels,
                                       list(spec.classes))["map"]
    onnx_map = split_map(run_split(session(export_dir / "model.onnx"), test, decoding).found, test,
                         list(spec.classes))["map"]
    sample = next(letterboxed(test.take([0]), decoding.input_wh))[0][0]
    torch_ms, onnx_ms = [], []
    for _ in range(3):  # interleaved, so both see the same machine state
        torch_ms.append(detector_torch_ms(trained, sample, decoding))
        onnx_ms.append(detector_ms(export_dir / "model.onnx", sample, decoding))
    base, chosen = measure_detector(trained), measure_detector(deployable)
    cpu = cpu_description()
    print(f"\n3. The {spec.name} detector: trained (torch eager fp32) vs deployable `{preprocess.variant}` (ONNX "
          f"Runtime), test split of {len(test)} images, decoding and NMS included; measured on {cpu['cpu']}, "
          f"VNNI {'yes' if cpu['vnni'] else 'no'}")
    print(f"{'':<34} {'params':>10} {'MACs':>14} {'mAP50-95':>9} {'ms 1 thr':>9}")
    print(f"{'trained, torch eager fp32':<34} {base.params:>10,} {base.macs:>14,} {torch_map:>9.4f} "
          f"{statistics.median(torch_ms):>9.2f}")
    print(f"{'deployable ' + preprocess.variant:<34} {chosen.params:>10,} {chosen.macs:>14,} {onnx_map:>9.4f} "
          f"{statistics.median(onnx_ms):>9.2f}")
    ratio, drop = base.macs / chosen.macs, 100 * (torch_map - onnx_map)
    speedup = statistics.median(torch_ms) / statistics.median(onnx_ms)
    print(f"MACs reduction {ratio:.2f}x at a test mAP50-95 change of {-drop:+.2f} points (target >= 2x at <= 1 "
          f"point: {'met' if ratio >= 2 and drop <= 1 else 'MISSED'}); served {speedup:.1f}x faster than torch eager "
          f"fp32 (target >= 4x: {'met' if speedup >= 4 else 'MISSED'})", flush=True)


@dataclass(frozen=True)
class DetectorRow:
    variant: str
    macs: int
    test_map: float
    runner: Callable[[], None]


def student_section(spec_path: Path, students: list[tuple[int, int, int | None]]) -> None:
    """Section 4: students distilled from the demo detector of the last `dvc repro`, each trained as the compress
    stage trains compress.student_head and quantized as the export stage quantizes, all measured in one run."""
    from compiler.load import load_spec
    from core.profiles import PROFILES
    from stages.detection.compress import compress_detector
    from vision.compression.timing import interleaved
    from vision.detection.compression import PruningPlan, measure_detector, validation_map
    from vision.detection.data import load_detection_split
    from vision.detection.onnx import (
        calibration_images,
        detector_runner,
        export_detector,
        letterboxed,
        run_split,
        session,
        split_map,
        torch_detector_runner,
    )
    from vision.detection.quantize import SENSITIVITY_IMAGES, quantize_within_floor
    from vision.detection.settings import spec_sampling
    from vision.detection.store import load_detector
    from vision.detection.student import student_plan

    spec = load_spec(spec_path, REPO).spec
    if not (REPO / "models" / spec.name / "train" / "model.json").is_file():
        raise SystemExit(f"models/{spec.name}/train is missing: run `make demo` first")
    trained, decoding = load_detector(REPO / "models" / spec.name / "train")
    classes, data = list(spec.classes), REPO / "data" / spec.name
    train, val, test = (load_detection_split(data / "ingest", data / "ingest" / "boxes.csv", data / "prune" /
                                             "split.csv", name, classes) for name in ("train", "val", "test"))
    calibration = calibration_images(train, decoding.input_wh, spec.compress.calibration_images)
    probe = calibration_images(val, decoding.input_wh, SENSITIVITY_IMAGES)
    weight_bits = PROFILES[spec.target.hardware].int8_weight_bits
    sample = next(letterboxed(test.take([0]), decoding.input_wh))[0][0]

    def onnx_map(path: Path, split) -> float:
        return split_map(run_split(session(path), split, decoding).found, split, classes,
                         decoding.max_detections)["map"]

    def int8_of(model, name: str, floor: float, work: Path) -> tuple[Path, str]:
        fp32, int8 = work / f"{name}.onnx", work / f"{name}-int8.onnx"
        export_detector(model, fp32)
        kept = quantize_within_floor(fp32, int8, calibration, probe, weight_bits, lambda p: onnx_map(p, val), floor)
        return int8, f"{len(kept.fp32_layers)} conv(s) kept fp32"

    floor = validation_map(trained, val, decoding) - spec.compress.budget.max_accuracy_drop
    with tempfile.TemporaryDirectory(prefix="autodl-student-bench-") as folder:
        work = Path(folder)
        int8, note = int8_of(trained, "trained", floor, work)
        rows = [DetectorRow("trained, torch eager fp32", measure_detector(trained).macs,
                            validation_map(trained, test, decoding),
                            torch_detector_runner(trained, sample, decoding)),
                DetectorRow(f"trained, int8 ({note})", measure_detector(trained).macs, onnx_map(int8, test),
                            detector_runner(int8, sample, decoding))]
        for fpn_channels, head_convs, epochs in students:
            training = spec.train.model_copy(update={"epochs": epochs or spec.train.epochs})
            # the student alone: the compress stage's own candidates without its pruning tracks
            compression = spec.compress.model_copy(update={"methods": ["quantize"], "student_head": StudentHead(
                fpn_channels=fpn_channels, head_convs=head_convs)})
            plan = PruningPlan(compression, training, decoding, spec.seed, spec.augment,
                               spec.detection.min_visibility, spec_sampling(spec.detection.tiling))
            started = time.perf_counter()
            student = compress_detector(trained, train, val, plan, student_plan(compression, trained, training)
                                        )[0]["student"]
            name = f"student pyramid {fpn_channels}, {head_convs} head conv(s), {training.epochs} epochs"
            print(f"{name}: distilled in {time.perf_counter() - started:.0f} s", flush=True)
            macs = measure_detector(student).macs
            rows.append(DetectorRow(f"{name}, torch fp32", macs, validation_map(student, test, decoding),
                                    torch_detector_runner(student, sample, decoding)))
            int8, note = int8_of(student, f"student-{fpn_channels}-{head_convs}-{training.epochs}", floor, work)
            rows.append(DetectorRow(f"{name}, int8 ({note})", macs, onnx_map(int8, test),
                                    detector_runner(int8, sample, decoding)))
        parts = latency_parts(trained, sample, decoding)
        before = torch.get_num_threads()
        torch.set_num_threads(1)  # torch held to one thread as ONNX Runtime is, as the export stage times
        try:
            timings = interleaved({row.variant: row.runner for row in rows} | parts)
        finally:
            torch.set_num_threads(before)
    base_macs, base_map = rows[0].macs, rows[0].test_map
    base_ms = timings[rows[0].variant].median_cpu_ms
    print(f"\n4. Students of the {spec.name} detector ({len(test)} test images; batch-1 latency, 1 thread, decoding "
          "and NMS included, CPU time in interleaved rounds as the export stage times)")
    width = max(len(row.variant) for row in rows)
    print(f"{'variant':<{width}} {'MACs':>13} {'fewer':>6} {'mAP50-95':>9} {'points':>7} {'ms':>7} {'faster':>7}")
    faster = {row.variant: base_ms / timings[row.variant].median_cpu_ms for row in rows}
    for row in rows:
        print(f"{row.variant:<{width}} {row.macs:>13,} {base_macs / row.macs:>5.2f}x {row.test_map:>9.4f} "
              f"{100 * (row.test_map - base_map):>+7.2f} {timings[row.variant].median_cpu_ms:>7.2f} "
              f"{faster[row.variant]:>6.2f}x")
    print("where the trained detector's time goes: " + "; ".join(
        f"{name} {timings[name].median_cpu_ms:.2f} ms" for name in parts))
    met = [row for row in rows if base_macs / row.macs >= 1.5 and base_map - row.test_map <= 0.01
           and faster[row.variant] >= 3]
    print(f"target (>= 1.5x fewer MACs within 1 point of test mAP50-95 and >= 3x faster than torch eager): "
          f"{'met by ' + met[0].variant if met else 'MISSED by every student'}", flush=True)


def student_arm(text: str) -> tuple[int, int, int | None]:
    """`64x1` or `64x1@40` -> (pyramid channels, head convolutions, epochs or None for the spec's)."""
    shape, _, epochs = text.strip().partition("@")
    fpn_channels, head_convs = (int(n) for n in shape.split("x"))
    return fpn_channels, head_convs, int(epochs) if epochs else None


def latency_parts(trained: torch.nn.Module, sample, decoding) -> dict[str, Callable[[], None]]:
    """Runners for the parts of one torch eager inference: the backbone alone, and decoding with NMS alone (on
    the trained detector's own outputs for the sample), to show which part a smaller head cannot shrink."""
    from runtime.detections import detect
    from vision.data.dataset import to_tensor

    x = to_tensor(sample[None])
    body = trained.fcos.backbone.body.eval()
    with torch.inference_mode():
        logits, regression, centerness, _ = (o.numpy() for o in trained.eval()(x))

    @torch.inference_mode()
    def backbone() -> None:
        body(x)

    def decode() -> None:
        detect(logits[0], regression[0], centerness[0], decoding)

    return {"backbone alone (torch eager fp32)": backbone, "decoding and NMS alone": decode}
