"""Latency that does not flip with the machine's load: interleaved, repeated, CPU-timed, compared with its spread.

The deployable file is chosen by latency, so a choice that hinged on what else the machine was doing would ship
another file (another digest) from the same spec. Three things keep it steady:
- Every candidate is timed in rounds, interleaved (round k times each candidate once, in a rotating order), so a
  burst of load falls on all candidates alike instead of on whichever was being measured.
- The figure is the CPU time of the thread that runs a single-threaded inference (time.thread_time), which
  equals wall time on an idle core and, unlike wall time, does not grow while the thread waits for a CPU.
- Two candidates whose paired per-round ratios do not show a clear difference (beyond TOLERANCE and the ratios'
  own spread) are equivalent; the export stage then decides by a stable rule (fewer bytes, then fewer MACs).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

T = TypeVar("T")

TOLERANCE = 0.1
"""Two latencies within 10% of each other are not told apart: below that, CPU makes and cache effects reorder
them anyway."""
ROUNDS = 7
RUNS_PER_ROUND = 25
WARMUP = 10


@dataclass(frozen=True)
class Timing:
    """One candidate's measurement: per-round medians of CPU and wall time, in milliseconds."""

    cpu_ms: tuple[float, ...]
    wall_ms: tuple[float, ...]

    @property
    def median_cpu_ms(self) -> float:
        return round(statistics.median(self.cpu_ms), 4)

    @property
    def median_wall_ms(self) -> float:
        return round(statistics.median(self.wall_ms), 4)

    def evidence(self) -> dict[str, object]:
        """What choice.json records: every round's figure and the spread."""
        return {"cpu_ms_per_round": [round(v, 4) for v in self.cpu_ms],
                "wall_ms_per_round": [round(v, 4) for v in self.wall_ms],
                "cpu_ms_median": self.median_cpu_ms, "wall_ms_median": self.median_wall_ms,
                "cpu_ms_spread": [round(min(self.cpu_ms), 4), round(max(self.cpu_ms), 4)]}


def _round_of(once: Callable[[], None], runs: int) -> tuple[float, float]:
    cpu, wall = [], []
    for _ in range(runs):
        started_cpu, started_wall = time.thread_time(), time.perf_counter()
        once()
        cpu.append((time.thread_time() - started_cpu) * 1000.0)
        wall.append((time.perf_counter() - started_wall) * 1000.0)
    return statistics.median(cpu), statistics.median(wall)


def interleaved(runners: dict[str, Callable[[], None]], rounds: int = ROUNDS, runs: int = RUNS_PER_ROUND,
                warmup: int = WARMUP) -> dict[str, Timing]:
    """Time every runner (one single-threaded inference each) in `rounds` interleaved rounds of `runs` calls."""
    names = list(runners)
    for name in names:
        for _ in range(warmup):
            runners[name]()
    cpu: dict[str, list[float]] = {name: [] for name in names}
    wall: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:  # rotate who goes first
            c, w = _round_of(runners[name], runs)
            cpu[name].append(c)
            wall[name].append(w)
    return {name: Timing(tuple(cpu[name]), tuple(wall[name])) for name in names}


def clearly_faster(a: Timing, b: Timing) -> bool:
    """Whether `a` is faster than `b` beyond TOLERANCE in (nearly) every round: the upper quartile of the paired
    per-round ratios a/b stays below 1 - TOLERANCE."""
    ratios = np.array(a.cpu_ms) / np.maximum(np.array(b.cpu_ms), 1e-9)
    return float(np.quantile(ratios, 0.75)) < 1.0 - TOLERANCE


def steady_choice(candidates: list[T], timings: dict[str, Timing] | None, name: Callable[[T], str],
                  stable_key: Callable[[T], Any]) -> tuple[T, list[T]]:
    """Of `candidates` (fastest first), the one a stable rule picks among those the timings cannot tell from the
    fastest, and that tied group. Without timings, the fastest."""
    fastest = candidates[0]
    if timings is None:
        return fastest, [fastest]
    tied = [c for c in candidates if not clearly_faster(timings[name(fastest)], timings[name(c)])]
    return min(tied, key=stable_key), tied


def tie_reason(tied: list[Any], passing: int, deployable: int) -> str:
    """How the choice was made, for choice.json and the log."""
    if len(tied) == 1:
        return f"fastest of {passing} of {deployable} variants within the budget"
    return (f"smallest of {len(tied)} variants within the measured noise of the fastest "
            f"({', '.join(r.variant for r in tied)}); {passing} of {deployable} within the budget")
