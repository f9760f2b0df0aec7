"""The compress stage's body, whatever the task: the task's candidates (the trained model, its pruned, distilled,
sparse, quantization-aware or student forms), each saved in torch form and exported to fp32 ONNX that must
answer as torch does, their pruning records, and the rounds table and summary.

Quantization, latency and the choice of the deployable model are the export stage's job, so everything here is
a pure function of the inputs (no timings). What differs between tasks (how a model is pruned, fine-tuned,
scored and exported) is a `CompressTask` that each task's compress module builds and passes to `compress`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from core.fsutil import atomic_directory, write_json
from stages.runtime import StageContext
from vision.compression.pruning import PruneResult, PruneRound, track_record
from vision.compression.reports import report_candidates
from vision.compression.scoring import Scoring


class CompressTask(Protocol):
    """What a task tells the compress stage."""

    scoring: Scoring

    def candidates(self, work: Path) -> tuple[dict[str, Any], dict[str, PruneResult]]:
        """The candidate models by name (`trained` first) and each pruning track; `work` may hold scratch files
        the task removes before returning."""

    def describe(self, models: dict[str, Any], tracks: dict[str, PruneResult], out: Path) -> dict[str, dict[str, Any]]:
        """Save each candidate in `out` (torch form and `<name>.onnx`, checked against torch); its params, MACs,
        torch validation score (`torch_<scoring.field>`) and ONNX parity."""

    def header(self) -> dict[str, Any]:
        """What variants.json says about the trained model before its candidates (its configuration...)."""


def round_logger(track: str, scoring: Scoring) -> Callable[[PruneRound], None]:
    """Each pruning round as one line, as it ends."""
    def log(r: PruneRound) -> None:
        print(f"compress: {track} round {r.step}: {r.params:,} params, {r.macs:,} MACs, {scoring.label} "
              f"{r.score:.4f}{'' if r.above_floor else ' (below the floor: round undone)'}"
              f"{' -> within budget' if r.within_budget and r.above_floor else ''}", flush=True)
    return log


def compress(ctx: StageContext, task: CompressTask) -> None:
    """The compress stage for `task`: the candidates and variants.json, the rounds table and the summary."""
    compression = ctx.spec("compress")
    started = time.perf_counter()
    with atomic_directory(ctx.output("candidates")) as out:
        models, tracks = task.candidates(out)
        described = task.describe(models, tracks, out)
        records = {name: track_record(track, compression, task.scoring) for name, track in tracks.items()}
        for name in models.keys() & records.keys():
            described[name]["budget_met"] = records[name]["budget_met"]
        write_json(out / ctx.inside("variants"), {**task.header(), "variants": described, "tracks": records})
    report_candidates(tracks, records, described, task.scoring, ctx.output("rounds"), ctx.output("summary"), started)
