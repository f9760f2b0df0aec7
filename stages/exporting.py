"""The export stage's body, whatever the task: lower each compressed candidate for the target, measure every
variant, keep the fastest within compress.budget as the deployable bundle, and write the table, the choice,
the Pareto plot and the summary.

Every variant (torch fp32 as the baseline, each candidate as fp32 ONNX and at the target's precision) gets the
task's validation and test figures, parameters, MACs, size on disk and batch-1 latency with 1 and 2 threads.
Latency is judged with 1 thread, what one serving replica gets, measured interleaved and repeated as
vision.compression.timing explains: variants within the measured noise of the fastest are decided by fewer
bytes, then fewer MACs, so the choice does not flip with the machine's load. When no variant is within the
budget the stage fails and says which limit to relax and by how much.

What differs between tasks (how a file is scored and timed, how int8 keeps its floor, what the bundle tells
the server) is an `ExportTask` that each task's export module builds and passes to `export`.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

from core.fsutil import atomic_directory, read_json, write_csv, write_json
from core.profiles import PROFILES, HardwareProfile
from core.progress import Progress
from core.spec.deployment import CompressionBudget
from runtime.bundle import MODEL_FILE, PREPROCESS_FILE, Preprocessing
from stages.runtime import StageContext, StageFailure
from vision.compression.onnx import convert_fp16, cpu_description
from vision.compression.pruning import track_line
from vision.compression.scoring import Scoring
from vision.compression.variants import NoVariantWithinBudget, Variant, choose, format_table, pareto_plot, time_rows


class ExportTask(Protocol):
    """What a task tells the export stage about its variants."""

    scoring: Scoring
    timing_runs: int
    """Interleaved rounds of the 1-thread latency measurement."""
    megapixels_per_pass: float | None
    """Image megapixels one batch-1 pass covers at the resolution the model sees (a detector's input, or the new
    area a tile adds); the table's ms_per_megapixel divides by it. None: not a figure this task reports."""

    def baseline(self) -> Variant:
        """The trained model as torch eager fp32: what serving without export would run (not deployable)."""

    def figures(self, path: Path) -> dict[str, float]:
        """The ONNX file's figures (scoring.columns), rounded to 6 places."""

    def latency_2_threads(self, path: Path) -> float:
        """The ONNX file's batch-1 latency with 2 threads, in ms."""

    def quantize(self, fp32: Path, int8: Path) -> tuple[str, ...]:
        """`fp32` lowered to int8 at `int8`, keeping the layers the floor needs in fp32 (their names returned)."""

    def runner(self, row: Variant) -> Callable[[], None]:
        """One batch-1 inference of `row`, for the interleaved timing."""

    def preprocessing(self, model_file: Path) -> dict[str, Any]:
        """The bundle's preprocess.json fields that describe the deployable `model_file` (size, normalisation,
        classes, decoding, a tagger's thresholds)."""


def candidate_variant(path: Path, name: str, candidate: dict[str, Any], precision: str, task: ExportTask,
                      fp32_layers: tuple[str, ...] = ()) -> Variant:
    """The row of one ONNX file `<candidate>-<precision>.onnx`."""
    return Variant(name, name.rsplit("-", 1)[0], precision, "onnxruntime", True, candidate["params"],
                   candidate["macs"], path.stat().st_size, task.figures(path), 0.0,
                   round(task.latency_2_threads(path), 4), " ".join(fp32_layers), path=path)


def build_variants(compress_dir: Path, candidates: dict[str, dict[str, Any]], task: ExportTask, work: Path,
                   precision: str) -> list[Variant]:
    """The torch baseline row, then each candidate (`<name>.onnx` in `compress_dir`, described by the compress
    stage's variants.json) as fp32 ONNX and at `precision` (fp32: not lowered)."""
    lowered = precision != "fp32"
    with Progress("export", 1 + len(candidates) * (2 if lowered else 1), unit="variant") as shown:
        rows = [task.baseline()]
        shown.update(1, "trained-torch measured")
        for name, candidate in candidates.items():
            fp32 = work / f"{name}-fp32.onnx"
            shutil.copyfile(compress_dir / f"{name}.onnx", fp32)
            rows.append(candidate_variant(fp32, f"{name}-fp32", candidate, "fp32", task))
            shown.update(1, f"{name}-fp32 measured")
            if lowered:
                low, kept = work / f"{name}-{precision}.onnx", ()
                if precision == "int8":
                    kept = task.quantize(fp32, low)
                else:
                    convert_fp16(fp32, low)
                rows.append(candidate_variant(low, f"{name}-{precision}", candidate, precision, task, kept))
                shown.update(1, f"{name}-{precision} measured")
    return rows


def target_precision(ctx: StageContext, profile: HardwareProfile) -> str:
    """The target's precision when compress.methods lowers the model (`quantize`), else fp32."""
    return profile.precision if "quantize" in ctx.spec("compress.methods") else "fp32"


def baseline_score(described: dict[str, Any], scoring: Scoring) -> float:
    """The trained model's validation figure in torch, as the compress stage measured it."""
    return float(described["variants"]["trained"][f"torch_{scoring.field}"])


# Over 40 lines: the stage reads its inputs, writes each named output and prints its summary in order; each
# step is a call into the library, and splitting them would only pass the same dozen values around.
def export(ctx: StageContext, task: ExportTask) -> None:
    """The export stage for `task`: every variant measured, the deployable bundle and the reports written."""
    budget: CompressionBudget = ctx.spec("compress.budget")
    profile = PROFILES[ctx.spec("target").hardware]
    scoring = task.scoring
    described = read_json(ctx.input("variants"))
    baseline = baseline_score(described, scoring)
    with atomic_directory(ctx.output("deployable")) as out:
        work = out / "variants"
        work.mkdir()
        rows = build_variants(ctx.input("candidates"), described["variants"], task, work,
                              target_precision(ctx, profile))
        rows, timings = time_rows(rows, task.runner, runs=task.timing_runs)
        if task.megapixels_per_pass is not None:
            rows = [replace(r, ms_per_megapixel=round(r.latency_ms_1_thread / task.megapixels_per_pass, 4))
                    for r in rows]
        print(format_table(rows, scoring), flush=True)
        try:
            chosen, reason = choose(rows, budget, baseline, scoring, described.get("tracks", {}), timings)
        except NoVariantWithinBudget as exc:
            raise StageFailure(str(exc)) from None
        assert chosen.path is not None
        shutil.copyfile(chosen.path, out / MODEL_FILE)
        shutil.rmtree(work)
        write_json(out / PREPROCESS_FILE, Preprocessing(
            **task.preprocessing(out / MODEL_FILE), variant=chosen.variant, precision=chosen.precision,
            target=profile.name, execution_provider=profile.execution_provider).to_dict())
    table = [r.row(scoring) for r in rows]
    write_csv(ctx.output("variants"), table, scoring.row_fields())
    write_json(ctx.output("choice"), {"chosen": chosen.variant, "reason": reason,
                                      "budget": budget.model_dump(mode="json"),
                                      f"baseline_{scoring.field}": baseline, "measured_on": cpu_description(),
                                      "variants": table,
                                      "latency_evidence": {name: t.evidence() for name, t in timings.items()}})
    pareto_plot(rows, chosen, budget, baseline, scoring, ctx.output("pareto"),
                f"{ctx.project}: variants ({profile.name} target)")
    write_json(ctx.output("summary"), summary(rows[0], chosen, baseline, scoring))
    for name, record in described.get("tracks", {}).items():
        print(f"export: {track_line(name, record, scoring)}")
    print(f"export: {reason}")


def summary(torch_row: Variant, chosen: Variant, baseline: float, scoring: Scoring) -> dict[str, Any]:
    """The deployable's figures as DVC metrics: its validation score, its test figures, the drop from the
    trained model, its size and its speed against torch eager."""
    tests = {name: chosen.figures[name] for name in scoring.test_columns}
    return {"variant": chosen.variant, scoring.field: chosen.score(scoring), **tests,
            f"{scoring.field}_drop": round(baseline - chosen.score(scoring), 6), "params": chosen.params,
            "macs": chosen.macs, "size_bytes": chosen.size_bytes, "latency_ms_1_thread": chosen.latency_ms_1_thread,
            "macs_reduction": round(torch_row.macs / chosen.macs, 3),
            "speedup_vs_torch_fp32": round(torch_row.latency_ms_1_thread / chosen.latency_ms_1_thread, 3),
            **({"ms_per_megapixel": chosen.ms_per_megapixel} if chosen.ms_per_megapixel is not None else {})}
