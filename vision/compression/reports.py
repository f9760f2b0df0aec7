"""What the compress stage of every task reports once its candidates exist: how each pruning track ended, every
round as a row (`dvc plots`), and each candidate's size and validation score."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from core.fsutil import write_csv, write_json
from vision.compression.pruning import PruneResult, track_line
from vision.compression.scoring import Scoring


# Seven parameters: what was built (tracks, their records, the described candidates), how it is scored, and
# where the two reports go; `started` times the stage for its last line.
def report_candidates(tracks: dict[str, PruneResult], records: dict[str, dict[str, Any]],
                      described: dict[str, dict[str, Any]], scoring: Scoring, rounds_csv: Path, summary_json: Path,
                      started: float) -> None:
    """Print each track's ending, write the rounds table and the candidates' summary, and print the summary."""
    for name, record in records.items():
        print(f"compress: {track_line(name, record, scoring)}")
    write_csv(rounds_csv, [{"track": name, **r.row(scoring)} for name, result in tracks.items() for r in result.rounds],
              ("track", "step", "params", "macs", scoring.field, "within_budget", "above_floor"))
    kept = ("params", "macs", f"torch_{scoring.field}")
    write_json(summary_json, {name: {k: row[k] for k in kept} for name, row in described.items()})
    summary = ", ".join(f"{name} {row['params']:,} params ({scoring.label} {row[kept[-1]]:.4f})"
                        for name, row in described.items())
    print(f"compress: {summary} in {time.perf_counter() - started:.0f} s")
