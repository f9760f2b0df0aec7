"""The deployable choice, whatever the task: every exported variant as a row, the fastest one within
compress.budget, and the messages and picture that say why (or what to relax when none is within it).

A task differs only in how a variant is scored (`Scoring`: classification's validation accuracy, detection's
validation mAP50-95) and in how its rows are measured, which its export stage does before calling this.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from core.spec.deployment import CompressionBudget
from vision.compression.scoring import Scoring
from vision.compression.timing import Timing, interleaved, steady_choice, tie_reason
from vision.plots import pyplot, save_figure

SIZE_LIMITS = ("max_params", "max_macs", "max_latency_ms")


class NoVariantWithinBudget(Exception):
    """Every variant breaks compress.budget; the message says what to relax."""


@dataclass(frozen=True)
class Variant:
    """One measured variant: a candidate lowered to a precision, with its size, figures and latencies."""

    variant: str
    candidate: str
    precision: str
    runtime: str
    deployable: bool
    params: int
    macs: int
    size_bytes: int
    figures: Mapping[str, float | None]
    """The task's figures (Scoring.columns); None where not measured (the torch baseline's test figures)."""
    latency_ms_1_thread: float
    latency_ms_2_threads: float
    fp32_layers: str = ""
    """Layers an int8 variant keeps in fp32 (the sensitivity analysis' choice), space-separated."""
    path: Path | None = field(default=None, compare=False)
    ms_per_megapixel: float | None = None
    """The 1-thread latency per megapixel of image covered (a detector's; see stages.exporting.ExportTask)."""

    def score(self, scoring: Scoring) -> float:
        value = self.figures[scoring.field]
        assert value is not None, f"{self.variant} has no {scoring.field}"
        return value

    def row(self, scoring: Scoring) -> dict[str, Any]:
        values = {"variant": self.variant, "candidate": self.candidate, "precision": self.precision,
                  "runtime": self.runtime, "deployable": self.deployable, "params": self.params, "macs": self.macs,
                  "size_bytes": self.size_bytes, **self.figures, "latency_ms_1_thread": self.latency_ms_1_thread,
                  "latency_ms_2_threads": self.latency_ms_2_threads, "fp32_layers": self.fp32_layers,
                  "ms_per_megapixel": self.ms_per_megapixel}
        return {name: values[name] for name in scoring.row_fields()}


def time_rows(rows: list[Variant], runner_for: Callable[[Variant], Callable[[], None]], runs: int
              ) -> tuple[list[Variant], dict[str, Timing]]:
    """Every row's 1-thread latency, measured interleaved (vision.compression.timing) with torch held to one
    thread as ONNX Runtime is."""
    import torch

    runners = {r.variant: runner_for(r) for r in rows}
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        timings = interleaved(runners, runs=runs)
    finally:
        torch.set_num_threads(before)
    return [replace(r, latency_ms_1_thread=timings[r.variant].median_cpu_ms) for r in rows], timings


def violations(row: Variant, budget: CompressionBudget, baseline: float, scoring: Scoring
               ) -> dict[str, tuple[float, float]]:
    """Limit name -> (value the row needs, limit set) for each limit the row breaks."""
    values = {"max_params": row.params, "max_macs": row.macs, "max_latency_ms": row.latency_ms_1_thread}
    found = {name: (value, getattr(budget, name)) for name, value in values.items()
             if getattr(budget, name) is not None and value > getattr(budget, name)}
    drop = round(baseline - row.score(scoring), 6)
    if drop > budget.max_accuracy_drop:
        found["max_accuracy_drop"] = (drop, budget.max_accuracy_drop)
    return found


# Six parameters: the rows and the budget, and what the failure message needs to say why.
def choose(rows: list[Variant], budget: CompressionBudget, baseline: float, scoring: Scoring,
           tracks: dict[str, dict[str, Any]] | None = None, timings: dict[str, Timing] | None = None
           ) -> tuple[Variant, str]:
    """The fastest deployable row within the budget, and why; rows the timings cannot tell from the fastest
    (vision.compression.timing) are decided by fewer bytes, then fewer MACs. NoVariantWithinBudget when no row is
    within the budget (`tracks`, how each pruning track ended, lets the failure say when the floor stopped
    pruning)."""
    deployable = [r for r in rows if r.deployable]
    passing = sorted((r for r in deployable if not violations(r, budget, baseline, scoring)),
                     key=lambda r: (r.latency_ms_1_thread, r.size_bytes, r.variant))
    if not passing:
        raise NoVariantWithinBudget(relax_message(deployable, budget, baseline, scoring, tracks or {}))
    best, tied = steady_choice(passing, timings, lambda r: r.variant, lambda r: (r.size_bytes, r.macs, r.variant))
    why = tie_reason(tied, len(passing), len(deployable))
    reason = (f"{best.variant}: {why} ({best.latency_ms_1_thread:.3f} ms at batch 1 on 1 thread{scoring.latency_note}"
              f", {best.params:,} params, {best.size_bytes / 1e6:.2f} MB, {scoring.label} {best.score(scoring):.4f} "
              f"vs {baseline:.4f} trained)")
    return best, reason


def floor_message(tracks: dict[str, dict[str, Any]], baseline: float, budget: CompressionBudget,
                  scoring: Scoring) -> str:
    """Why pruning did not shrink the model further when the floor, not the size budget, stopped it."""
    stopped = {name: t for name, t in sorted(tracks.items()) if t["stopped_by"] == "accuracy_floor"}
    if not stopped:
        return ""
    rounds = "; ".join(
        f"{name} round {t['last_round']['step']} reached {scoring.label} {t['last_round'][scoring.field]:.4f} "
        f"({t['last_round']['params']:,} params, {t['last_round']['macs']:,} MACs)" for name, t in stopped.items())
    first = next(iter(stopped.values()))
    return (f"pruning stopped at the accuracy floor, not at the size budget: {rounds}, below the floor "
            f"{first['floor']:.4f} (trained {scoring.label} {baseline:.4f} minus compress.budget.max_accuracy_drop "
            f"{budget.max_accuracy_drop:g}); give each round more fine-tuning (compress.finetune_epochs, now "
            f"{first['finetune_epochs']}), prune in more, smaller rounds (compress.prune_steps, now "
            f"{first['prune_steps']}) or allow a larger drop (compress.budget.max_accuracy_drop). ")


def relax_message(rows: list[Variant], budget: CompressionBudget, baseline: float, scoring: Scoring,
                  tracks: dict[str, dict[str, Any]] | None = None) -> str:
    """What stopped every variant: the accuracy floor when it ended pruning, then which limits to relax, and by
    how much, for the variant closest to the budget."""
    def distance(row: Variant) -> tuple[int, float]:
        broken = violations(row, budget, baseline, scoring)
        return len(broken), sum((need - limit) / max(abs(limit), 1e-9) for need, limit in broken.values())

    closest = min(rows, key=lambda r: (*distance(r), r.variant))
    broken = violations(closest, budget, baseline, scoring)
    parts = []
    for name, (need, limit) in broken.items():
        if name in ("max_params", "max_macs"):
            parts.append(f"compress.budget.{name} to {int(need):,} (+{int(need - limit):,})")
        elif name == "max_latency_ms":
            parts.append(f"compress.budget.max_latency_ms to {need:.3f} (+{need - limit:.3f} ms)")
        else:
            parts.append(f"compress.budget.max_accuracy_drop to {need:.4f} (+{need - limit:.4f})")
    why = floor_message(tracks or {}, baseline, budget, scoring) if broken.keys() & set(SIZE_LIMITS) else ""
    return (f"no variant meets compress.budget; {why}the closest is {closest.variant}: "
            + ("otherwise relax " if why else "relax ") + " and ".join(parts)
            + " (or change compress.methods / compress.max_prune_ratio); "
            + tradeoffs(rows, budget, baseline, scoring) + "; see the variant table")


def _size_needs(row: Variant, budget: CompressionBudget) -> str:
    values = {"max_params": f"{row.params:,}", "max_macs": f"{row.macs:,}",
              "max_latency_ms": f"{row.latency_ms_1_thread:.3f}"}
    return " and ".join(f"compress.budget.{name} {values[name]}" for name in SIZE_LIMITS
                        if getattr(budget, name) is not None)


def tradeoffs(rows: list[Variant], budget: CompressionBudget, baseline: float, scoring: Scoring) -> str:
    """The best trade-offs measured, whatever the budget: the smallest variant within the accuracy limit and
    the most accurate within the size limits, each with the spec values that would make it the choice."""
    def figures(row: Variant) -> str:
        return (f"{row.params:,} params, {row.macs:,} MACs, {row.latency_ms_1_thread:.3f} ms, {scoring.label} "
                f"{row.score(scoring):.4f}")

    parts = []
    accurate = [r for r in rows if "max_accuracy_drop" not in violations(r, budget, baseline, scoring)]
    if accurate and _size_needs(accurate[0], budget):
        latency_first = budget.max_latency_ms is not None
        small = min(accurate, key=lambda r: ((r.latency_ms_1_thread, r.macs) if latency_first else
                                             (r.macs, r.latency_ms_1_thread), r.params, r.variant))
        parts.append(f"the smallest variant within the accuracy limit is {small.variant} ({figures(small)}): "
                     f"{_size_needs(small, budget)} would choose it")
    small_enough = [r for r in rows if not violations(r, budget, baseline, scoring).keys() & set(SIZE_LIMITS)]
    if small_enough:
        best = max(small_enough, key=lambda r: (r.score(scoring), -r.latency_ms_1_thread, r.variant))
        drop = max(round(baseline - best.score(scoring), 6), 0.0)
        parts.append(f"the most accurate within the size limits is {best.variant} ({figures(best)}): "
                     f"compress.budget.max_accuracy_drop {drop:.4f} would choose it")
    else:
        parts.append("no variant is within the size limits: prune further (compress.max_prune_ratio, "
                     "compress.prune_steps, compress.allocation: global, compress.methods: [sparse_train]) or "
                     "name a smaller compress.student")
    return "best trade-offs measured: " + "; ".join(parts)


def format_table(rows: list[Variant], scoring: Scoring) -> str:
    """The variants as a fixed-width table for the log."""
    figures = "".join(f" {header:>8}" for header in scoring.headers)
    lines = [f"{'variant':<26} {'params':>10} {'MACs':>13} {'size MB':>8}{figures} {'ms 1 thr':>9} {'ms 2 thr':>9} "
             f"{'fp32 layers':>11}"]
    for r in rows:
        values = "".join(f" {'' if r.figures[c] is None else format(r.figures[c], '.4f'):>8}" for c in scoring.columns)
        kept = len(r.fp32_layers.split()) if r.precision == "int8" else ""
        lines.append(f"{r.variant:<26} {r.params:>10,} {r.macs:>13,} {r.size_bytes / 1e6:>8.2f}{values} "
                     f"{r.latency_ms_1_thread:>9.3f} {r.latency_ms_2_threads:>9.3f} {kept!s:>11}")
    return "\n".join(lines)


# Six parameters: the rows, the choice, the budget's floor and latency, and where and how to draw them.
def pareto_plot(rows: list[Variant], chosen: Variant, budget: CompressionBudget, baseline: float, scoring: Scoring,
                path: Path, title: str) -> None:
    """Latency vs the validation score for every variant; the Pareto front joined, the choice circled."""
    plt = pyplot()
    from adjustText import adjust_text
    from matplotlib.ticker import FuncFormatter

    figure, axis = plt.subplots(figsize=(8.5, 5.5), dpi=100)
    labels = []
    for row in rows:
        marker = "s" if not row.deployable else ("D" if row.precision != "fp32" else "o")
        axis.scatter(row.latency_ms_1_thread, row.score(scoring), marker=marker, s=40,
                     c="#d62728" if row is chosen else "#1f77b4")
        labels.append(axis.text(row.latency_ms_1_thread, row.score(scoring), row.variant, fontsize=8,
                                color="#d62728" if row is chosen else "#1d2330"))
    front, best = [], -1.0
    for row in sorted(rows, key=lambda r: (r.latency_ms_1_thread, -r.score(scoring))):
        if row.score(scoring) > best:
            front.append(row)
            best = row.score(scoring)
    axis.plot([r.latency_ms_1_thread for r in front], [r.score(scoring) for r in front], "--", c="#999999",
              label="Pareto front")
    axis.axhline(baseline - budget.max_accuracy_drop, c="#2ca02c", lw=1, label="accuracy floor")
    if budget.max_latency_ms is not None:
        axis.axvline(budget.max_latency_ms, c="#ff7f0e", lw=1, label="latency budget")
    axis.set_xscale("log")
    plain = FuncFormatter(lambda value, _: f"{value:g}")
    axis.xaxis.set_major_formatter(plain)
    axis.xaxis.set_minor_formatter(plain)
    axis.set_xlabel("batch-1 latency, 1 thread (ms, log scale)")
    axis.set_ylabel(scoring.axis_label)
    axis.set_title(title, fontsize=10)
    axis.legend(fontsize=8, loc="lower right")
    figure.tight_layout()
    # variants of one candidate often sit on top of each other: adjustText moves the labels apart (seeded, so
    # the same figures give the same picture) and draws a leader line to each point
    adjust_text(labels, ax=axis, arrowprops={"arrowstyle": "-", "color": "#888888", "lw": 0.6})
    save_figure(figure, path)
