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
from dataclasses import asdict, dataclass, field, replace
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
from vision.compression.timing import Timing, interleaved, steady_choice, tie_reason
from vision.data.dataset import SplitData, load_splits
from vision.plots import pyplot, save_figure

ROW_FIELDS = ("variant", "candidate", "precision", "runtime", "deployable", "params", "macs", "size_bytes",
              "val_accuracy", "test_accuracy", "latency_ms_1_thread", "latency_ms_2_threads", "fp32_layers")


@dataclass(frozen=True)
class Variant:
    variant: str
    candidate: str
    precision: str
    runtime: str
    deployable: bool
    params: int
    macs: int
    size_bytes: int
    val_accuracy: float
    test_accuracy: float | None
    latency_ms_1_thread: float
    latency_ms_2_threads: float
    fp32_layers: str = ""
    """Layers an int8 variant keeps in fp32 (the sensitivity analysis' choice), space-separated."""
    path: Path | None = field(default=None, compare=False)


# Eight parameters: one variant's file and names, and the splits it is measured on.
def measure(path: Path, name: str, candidate: dict[str, Any], precision: str, val: SplitData, test: SplitData,
            size_px: int, fp32_layers: tuple[str, ...] = ()) -> Variant:
    sess = session(path)
    val_acc, test_acc = onnx_accuracy(sess, val), onnx_accuracy(sess, test)
    return Variant(name, name.split("-")[0], precision, "onnxruntime", True, candidate["params"], candidate["macs"],
                   path.stat().st_size, round(val_acc, 6), round(test_acc, 6),
                   0.0, round(latency_ms(path, size_px, 2, runs=50), 4), " ".join(fp32_layers), path)


def torch_baseline(model_dir: Path, trained: dict[str, Any], size_px: int) -> Variant:
    """The trained model as torch eager fp32: what serving without export would run (not deployable)."""
    from vision.training.model import WEIGHTS_FILE, load_model

    model, _ = load_model(model_dir)
    return Variant("trained-torch", "trained", "fp32", "torch eager", False, trained["params"], trained["macs"],
                   (model_dir / WEIGHTS_FILE).stat().st_size, trained["torch_val_accuracy"], None,
                   0.0, round(torch_latency_ms(model, size_px, 2, runs=50), 4))


def time_variants(rows: list[Variant], model_dir: Path, size_px: int) -> tuple[list[Variant], dict[str, Timing]]:
    """Every row's 1-thread latency, measured interleaved (vision.compression.timing)."""
    import torch

    from vision.training.model import load_model

    model, _ = load_model(model_dir)
    runners = {r.variant: (onnx_runner(r.path, size_px) if r.path is not None else torch_runner(model, size_px))
               for r in rows}
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        timings = interleaved(runners)
    finally:
        torch.set_num_threads(before)
    return [replace(r, latency_ms_1_thread=timings[r.variant].median_cpu_ms) for r in rows], timings


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


def violations(row: Variant, budget: CompressionBudget, baseline: float) -> dict[str, tuple[float, float]]:
    """Limit name -> (value the row needs, limit set) for each limit the row breaks."""
    found: dict[str, tuple[float, float]] = {}
    if budget.max_params is not None and row.params > budget.max_params:
        found["max_params"] = (row.params, budget.max_params)
    if budget.max_macs is not None and row.macs > budget.max_macs:
        found["max_macs"] = (row.macs, budget.max_macs)
    if budget.max_latency_ms is not None and row.latency_ms_1_thread > budget.max_latency_ms:
        found["max_latency_ms"] = (row.latency_ms_1_thread, budget.max_latency_ms)
    drop = round(baseline - row.val_accuracy, 6)
    if drop > budget.max_accuracy_drop:
        found["max_accuracy_drop"] = (drop, budget.max_accuracy_drop)
    return found


def choose(rows: list[Variant], budget: CompressionBudget, baseline: float,
           tracks: dict[str, dict[str, Any]] | None = None, timings: dict[str, Timing] | None = None
           ) -> tuple[Variant, str]:
    """The fastest deployable row within the budget, and why; rows the timings cannot tell from the fastest
    (vision.compression.timing) are decided by fewer bytes, then fewer MACs. StageFailure when no row is within
    the budget (`tracks`, how each pruning track ended, lets the failure say when the accuracy floor stopped
    pruning)."""
    deployable = [r for r in rows if r.deployable]
    passing = sorted((r for r in deployable if not violations(r, budget, baseline)),
                     key=lambda r: (r.latency_ms_1_thread, r.size_bytes, r.variant))
    if not passing:
        raise StageFailure(relax_message(deployable, budget, baseline, tracks or {}))
    best, tied = steady_choice(passing, timings, lambda r: r.variant, lambda r: (r.size_bytes, r.macs, r.variant))
    why = tie_reason(tied, len(passing), len(deployable))
    reason = (f"{best.variant}: {why} ({best.latency_ms_1_thread:.3f} ms at batch 1 on 1 thread, {best.params:,} "
              f"params, {best.size_bytes / 1e6:.2f} MB, val accuracy {best.val_accuracy:.4f} vs {baseline:.4f} "
              "trained)")
    return best, reason


SIZE_LIMITS = ("max_params", "max_macs", "max_latency_ms")


def floor_message(tracks: dict[str, dict[str, Any]], baseline: float, budget: CompressionBudget) -> str:
    """Why pruning did not shrink the model further when the accuracy floor, not the size budget, stopped it."""
    stopped = {name: t for name, t in sorted(tracks.items()) if t["stopped_by"] == "accuracy_floor"}
    if not stopped:
        return ""
    rounds = "; ".join(
        f"{name} round {t['last_round']['step']} reached val accuracy {t['last_round']['val_accuracy']:.4f} "
        f"({t['last_round']['params']:,} params, {t['last_round']['macs']:,} MACs)" for name, t in stopped.items())
    first = next(iter(stopped.values()))
    return (f"pruning stopped at the accuracy floor, not at the size budget: {rounds}, below the floor "
            f"{first['floor']:.4f} (trained val accuracy {baseline:.4f} minus compress.budget.max_accuracy_drop "
            f"{budget.max_accuracy_drop:g}); give each round more fine-tuning (compress.finetune_epochs, now "
            f"{first['finetune_epochs']}), prune in more, smaller rounds (compress.prune_steps, now "
            f"{first['prune_steps']}) or allow a larger drop (compress.budget.max_accuracy_drop). ")


def relax_message(rows: list[Variant], budget: CompressionBudget, baseline: float,
                  tracks: dict[str, dict[str, Any]] | None = None) -> str:
    """What stopped every variant: the accuracy floor when it ended pruning, then which limits to relax, and by
    how much, for the variant closest to the budget."""
    def distance(row: Variant) -> tuple[int, float]:
        broken = violations(row, budget, baseline)
        return len(broken), sum((need - limit) / max(abs(limit), 1e-9) for need, limit in broken.values())

    closest = min(rows, key=lambda r: (*distance(r), r.variant))
    broken = violations(closest, budget, baseline)
    parts = []
    for name, (need, limit) in broken.items():
        if name in ("max_params", "max_macs"):
            parts.append(f"compress.budget.{name} to {int(need):,} (+{int(need - limit):,})")
        elif name == "max_latency_ms":
            parts.append(f"compress.budget.max_latency_ms to {need:.3f} (+{need - limit:.3f} ms)")
        else:
            parts.append(f"compress.budget.max_accuracy_drop to {need:.4f} (+{need - limit:.4f})")
    why = floor_message(tracks or {}, baseline, budget) if broken.keys() & set(SIZE_LIMITS) else ""
    return (f"no variant meets compress.budget; {why}the closest is {closest.variant}: "
            + ("otherwise relax " if why else "relax ") + " and ".join(parts)
            + " (or change compress.methods / compress.max_prune_ratio); " + tradeoffs(rows, budget, baseline)
            + "; see the variant table")


def _size_needs(row: Variant, budget: CompressionBudget) -> str:
    values = {"max_params": f"{row.params:,}", "max_macs": f"{row.macs:,}",
              "max_latency_ms": f"{row.latency_ms_1_thread:.3f}"}
    return " and ".join(f"compress.budget.{name} {values[name]}" for name in SIZE_LIMITS
                        if getattr(budget, name) is not None)


def tradeoffs(rows: list[Variant], budget: CompressionBudget, baseline: float) -> str:
    """The best trade-offs measured, whatever the budget: the smallest variant within the accuracy limit and
    the most accurate within the size limits, each with the spec values that would make it the choice."""
    def figures(row: Variant) -> str:
        return (f"{row.params:,} params, {row.macs:,} MACs, {row.latency_ms_1_thread:.3f} ms, val accuracy "
                f"{row.val_accuracy:.4f}")

    parts = []
    accurate = [r for r in rows if "max_accuracy_drop" not in violations(r, budget, baseline)]
    if accurate and _size_needs(accurate[0], budget):
        latency_first = budget.max_latency_ms is not None
        small = min(accurate, key=lambda r: ((r.latency_ms_1_thread, r.macs) if latency_first else
                                             (r.macs, r.latency_ms_1_thread), r.params, r.variant))
        parts.append(f"the smallest variant within the accuracy limit is {small.variant} ({figures(small)}): "
                     f"{_size_needs(small, budget)} would choose it")
    small_enough = [r for r in rows if not violations(r, budget, baseline).keys() & set(SIZE_LIMITS)]
    if small_enough:
        best = max(small_enough, key=lambda r: (r.val_accuracy, -r.latency_ms_1_thread, r.variant))
        drop = max(round(baseline - best.val_accuracy, 6), 0.0)
        parts.append(f"the most accurate within the size limits is {best.variant} ({figures(best)}): "
                     f"compress.budget.max_accuracy_drop {drop:.4f} would choose it")
    else:
        parts.append("no variant is within the size limits: prune further (compress.max_prune_ratio, "
                     "compress.prune_steps, compress.allocation: global, compress.methods: [sparse_train]) or "
                     "name a smaller compress.student")
    return "best trade-offs measured: " + "; ".join(parts)


def format_table(rows: list[Variant]) -> str:
    lines = [f"{'variant':<26} {'params':>10} {'MACs':>12} {'size MB':>8} {'val acc':>8} {'test acc':>8} "
             f"{'ms 1 thr':>9} {'ms 2 thr':>9} {'fp32 layers':>11}"]
    for r in rows:
        test = "" if r.test_accuracy is None else f"{r.test_accuracy:.4f}"
        kept = len(r.fp32_layers.split()) if r.precision == "int8" else ""
        lines.append(f"{r.variant:<26} {r.params:>10,} {r.macs:>12,} {r.size_bytes / 1e6:>8.2f} {r.val_accuracy:>8.4f} "
                     f"{test:>8} {r.latency_ms_1_thread:>9.3f} {r.latency_ms_2_threads:>9.3f} {kept!s:>11}")
    return "\n".join(lines)


def pareto_plot(rows: list[Variant], chosen: Variant, budget: CompressionBudget, baseline: float, path: Path,
                title: str) -> None:
    """Latency vs validation accuracy for every variant; the Pareto front joined, the choice circled."""
    plt = pyplot()
    from adjustText import adjust_text
    from matplotlib.ticker import FuncFormatter

    figure, axis = plt.subplots(figsize=(8.5, 5.5), dpi=100)
    labels = []
    for row in rows:
        marker = "s" if not row.deployable else ("D" if row.precision != "fp32" else "o")
        axis.scatter(row.latency_ms_1_thread, row.val_accuracy, marker=marker, s=40,
                     c="#d62728" if row is chosen else "#1f77b4")
        labels.append(axis.text(row.latency_ms_1_thread, row.val_accuracy, row.variant, fontsize=8,
                                color="#d62728" if row is chosen else "#1d2330"))
    front, best = [], -1.0
    for row in sorted(rows, key=lambda r: (r.latency_ms_1_thread, -r.val_accuracy)):
        if row.val_accuracy > best:
            front.append(row)
            best = row.val_accuracy
    axis.plot([r.latency_ms_1_thread for r in front], [r.val_accuracy for r in front], "--", c="#999999",
              label="Pareto front")
    axis.axhline(baseline - budget.max_accuracy_drop, c="#2ca02c", lw=1, label="accuracy floor")
    if budget.max_latency_ms is not None:
        axis.axvline(budget.max_latency_ms, c="#ff7f0e", lw=1, label="latency budget")
    axis.set_xscale("log")
    plain = FuncFormatter(lambda value, _: f"{value:g}")
    axis.xaxis.set_major_formatter(plain)
    axis.xaxis.set_minor_formatter(plain)
    axis.set_xlabel("batch-1 latency, 1 thread (ms, log scale)")
    axis.set_ylabel("validation accuracy")
    axis.set_title(title, fontsize=10)
    axis.legend(fontsize=8, loc="lower right")
    figure.tight_layout()
    # variants of one candidate often sit on top of each other: adjustText moves the labels apart (seeded, so
    # the same figures give the same picture) and draws a leader line to each point
    adjust_text(labels, ax=axis, arrowprops={"arrowstyle": "-", "color": "#888888", "lw": 0.6})
    save_figure(figure, path)


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
        table = [{k: v for k, v in asdict(r).items() if k in ROW_FIELDS} for r in rows]
        try:
            chosen, reason = choose(rows, budget, baseline, described.get("tracks", {}), timings)
        except StageFailure:
            print(format_table(rows), flush=True)
            raise
        assert chosen.path is not None
        shutil.copyfile(chosen.path, out / MODEL_FILE)
        shutil.rmtree(work)
        write_json(out / PREPROCESS_FILE, Preprocessing(
            input_size_px=size_px, mean=config["mean"], std=config["std"], classes=classes, variant=chosen.variant,
            precision=chosen.precision, target=profile.name, execution_provider=profile.execution_provider).to_dict())
    write_csv(ctx.output("variants"), table, ROW_FIELDS)
    choice_json, pareto_png = ctx.output("choice"), ctx.output("pareto")
    torch_row = rows[0]
    write_json(choice_json, {"chosen": chosen.variant, "reason": reason, "budget": budget.model_dump(mode="json"),
                             "baseline_val_accuracy": baseline, "measured_on": cpu_description(), "variants": table,
                             "latency_evidence": {name: t.evidence() for name, t in timings.items()}})
    pareto_plot(rows, chosen, budget, baseline, pareto_png, f"{ctx.project}: variants ({profile.name} target)")
    write_json(ctx.output("summary"), {
        "variant": chosen.variant, "val_accuracy": chosen.val_accuracy, "test_accuracy": chosen.test_accuracy,
        "val_accuracy_drop": round(baseline - chosen.val_accuracy, 6), "params": chosen.params,
        "macs": chosen.macs, "size_bytes": chosen.size_bytes, "latency_ms_1_thread": chosen.latency_ms_1_thread,
        "macs_reduction": round(torch_row.macs / chosen.macs, 3),
        "speedup_vs_torch_fp32": round(torch_row.latency_ms_1_thread / chosen.latency_ms_1_thread, 3)})
    print(format_table(rows))
    for name, record in described.get("tracks", {}).items():
        print(f"export: {track_line(name, record)}")
    print(f"export: {reason}")


if __name__ == "__main__":
    from core.contracts.classification.export import CONTRACT

    run_stage(CONTRACT, main)
