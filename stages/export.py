"""export: quantize the candidates for the target, measure every variant with ONNX Runtime, pick the deployable.

Every variant (torch fp32 as the baseline, each candidate as fp32 ONNX and at
the target's precision) gets accuracy, parameters, MACs, size on disk and
batch-1 latency with 1 and 2 threads. The deployable model is the fastest
variant within every limit of `compress.budget` (latency judged with 1 thread,
what one serving replica gets, measured interleaved and repeated as
vision.compression.timing explains: variants within the measured noise of the
fastest are decided by fewer bytes, then fewer MACs, so the choice does not flip
with the machine's load); when none is, the stage fails and says which limit to
relax and by how much. choice.json keeps every round's measurement.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from core.fsutil import atomic_directory, read_json, write_csv, write_json
from core.profiles import PROFILES
from core.progress import Progress
from core.spec.deployment import CompressionBudget
from runtime.bundle import MODEL_FILE, PREPROCESS_FILE, Preprocessing
from stages.runtime import StageContext, StageFailure, run_stage
from vision.compression.onnx import (
    convert_fp16,
    cpu_description,
    latency_ms,
    onnx_accuracy,
    onnx_runner,
    session,
    torch_latency_ms,
    torch_runner,
)
from vision.compression.pruning import track_line
from vision.compression.quantize import Int8Plan, quantize_within_floor
from vision.compression.timing import RUNS_PER_ROUND, Timing
from vision.compression.variants import (
    NoVariantWithinBudget,
    Variant,
    choose,
    format_table,
    pareto_plot,
    time_rows,
)
from vision.data.dataset import SplitData, load_splits
from vision.tasks.classification import SCORING


# Eight parameters: one variant's file and names, and the splits it is measured on.
def measure(path: Path, name: str, candidate: dict[str, Any], precision: str, val: SplitData, test: SplitData,
            size_px: int, fp32_layers: tuple[str, ...] = ()) -> Variant:
    sess = session(path)
    val_acc, test_acc = onnx_accuracy(sess, val), onnx_accuracy(sess, test)
    return Variant(name, name.split("-")[0], precision, "onnxruntime", True, candidate["params"], candidate["macs"],
                   path.stat().st_size, {"val_accuracy": round(val_acc, 6), "test_accuracy": round(test_acc, 6)},
                   0.0, round(latency_ms(path, size_px, 2, runs=50), 4), " ".join(fp32_layers), path)


def torch_baseline(model_dir: Path, trained: dict[str, Any], size_px: int) -> Variant:
    """The trained model as torch eager fp32: what serving without export would run (not deployable)."""
    from vision.training.model import WEIGHTS_FILE, load_model

    model, _ = load_model(model_dir)
    return Variant("trained-torch", "trained", "fp32", "torch eager", False, trained["params"], trained["macs"],
                   (model_dir / WEIGHTS_FILE).stat().st_size,
                   {"val_accuracy": trained["torch_val_accuracy"], "test_accuracy": None},
                   0.0, round(torch_latency_ms(model, size_px, 2, runs=50), 4))


def time_variants(rows: list[Variant], model_dir: Path, size_px: int) -> tuple[list[Variant], dict[str, Timing]]:
    """Every row's 1-thread latency, measured interleaved (vision.compression.variants.time_rows)."""
    from vision.training.model import load_model

    model, _ = load_model(model_dir)
    return time_rows(rows, lambda r: onnx_runner(r.path, size_px) if r.path is not None else
                     torch_runner(model, size_px), runs=RUNS_PER_ROUND)


# Ten parameters: where the candidates are and the three splits they are measured on; a bundle of them
# would exist for this one call.
def build_variants(compress_dir: Path, candidates: dict[str, dict[str, Any]], size_px: int, model_dir: Path,
                   work: Path, precision: str, int8: Int8Plan | None, calibration: SplitData, val: SplitData,
                   test: SplitData) -> list[Variant]:
    """The torch baseline row, then each candidate (`<name>.onnx` in `compress_dir`, described by the compress
    stage's variants.json) as fp32 ONNX and at the target precision (`int8` None: not lowered)."""
    lowered = int8 is not None and precision != "fp32"
    with Progress("export", 1 + len(candidates) * (2 if lowered else 1), unit="variant") as shown:
        rows = [torch_baseline(model_dir, candidates["trained"], size_px)]
        shown.update(1, "trained-torch measured")
        for name, candidate in candidates.items():
            fp32 = work / f"{name}-fp32.onnx"
            shutil.copyfile(compress_dir / f"{name}.onnx", fp32)
            rows.append(measure(fp32, f"{name}-fp32", candidate, "fp32", val, test, size_px))
            shown.update(1, f"{name}-fp32 measured")
            if lowered:
                low, kept = work / f"{name}-{precision}.onnx", ()
                if precision == "int8":
                    kept = quantize_within_floor(fp32, low, calibration.images, val, int8).fp32_layers
                else:
                    convert_fp16(fp32, low)
                rows.append(measure(low, f"{name}-{precision}", candidate, precision, val, test, size_px, kept))
                shown.update(1, f"{name}-{precision} measured")
    return rows


# Over 40 lines: the stage reads its inputs, writes each named output and prints its summary in order; each
# step is a call into the library, and splitting them would only pass the same dozen values around.
def main(ctx: StageContext) -> None:
    budget: CompressionBudget = ctx.spec("compress.budget")
    profile = PROFILES[ctx.spec("target").hardware]
    compress_dir, ingest_dir, split_csv = ctx.input("candidates"), ctx.input("images"), ctx.input("split")
    described = read_json(ctx.input("variants"))
    config = described["model"]
    classes, size_px = config["classes"], int(config["input_size_px"])
    splits = load_splits(ingest_dir, split_csv, classes, size_px)
    train, val, test = splits.train, splits.val, splits.test
    calibration_count = min(ctx.spec("compress.calibration_images"), len(train.labels))
    calibration = train.take(range(calibration_count))
    baseline = float(described["variants"]["trained"]["torch_val_accuracy"])
    with atomic_directory(ctx.output("deployable")) as out:
        work = out / "variants"
        work.mkdir()
        int8 = Int8Plan.from_spec(ctx.spec("compress.quantization"), profile.int8_weight_bits,
                                  baseline - budget.max_accuracy_drop)
        rows = build_variants(compress_dir, described["variants"], size_px, ctx.input("model"), work, profile.precision,
                              int8 if "quantize" in ctx.spec("compress.methods") else None, calibration, val, test)
        rows, timings = time_variants(rows, ctx.input("model"), size_px)
        table = [r.row(SCORING) for r in rows]
        try:
            chosen, reason = choose(rows, budget, baseline, SCORING, described.get("tracks", {}), timings)
        except NoVariantWithinBudget as exc:
            print(format_table(rows, SCORING), flush=True)
            raise StageFailure(str(exc)) from None
        assert chosen.path is not None
        shutil.copyfile(chosen.path, out / MODEL_FILE)
        shutil.rmtree(work)
        write_json(out / PREPROCESS_FILE, Preprocessing(
            input_size_px=size_px, mean=config["mean"], std=config["std"], classes=classes, variant=chosen.variant,
            precision=chosen.precision, target=profile.name, execution_provider=profile.execution_provider).to_dict())
    write_csv(ctx.output("variants"), table, SCORING.row_fields())
    choice_json, pareto_png = ctx.output("choice"), ctx.output("pareto")
    torch_row = rows[0]
    write_json(choice_json, {"chosen": chosen.variant, "reason": reason, "budget": budget.model_dump(mode="json"),
                             "baseline_val_accuracy": baseline, "measured_on": cpu_description(), "variants": table,
                             "latency_evidence": {name: t.evidence() for name, t in timings.items()}})
    pareto_plot(rows, chosen, budget, baseline, SCORING, pareto_png, f"{ctx.project}: variants ({profile.name} target)")
    write_json(ctx.output("summary"), {
        "variant": chosen.variant, "val_accuracy": chosen.score(SCORING),
        "test_accuracy": chosen.figures["test_accuracy"],
        "val_accuracy_drop": round(baseline - chosen.score(SCORING), 6), "params": chosen.params,
        "macs": chosen.macs, "size_bytes": chosen.size_bytes, "latency_ms_1_thread": chosen.latency_ms_1_thread,
        "macs_reduction": round(torch_row.macs / chosen.macs, 3),
        "speedup_vs_torch_fp32": round(torch_row.latency_ms_1_thread / chosen.latency_ms_1_thread, 3)})
    print(format_table(rows, SCORING))
    for name, record in described.get("tracks", {}).items():
        print(f"export: {track_line(name, record, SCORING)}")
    print(f"export: {reason}")


if __name__ == "__main__":
    from core.contracts.classification.export import CONTRACT

    run_stage(CONTRACT, main)
