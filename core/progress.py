"""Progress that reads well both on a terminal and in a log.

On a terminal, tqdm draws its bar. Written to a pipe or a file (CI, `make demo > log`), a tqdm bar is a run of
carriage-return updates that the log shows as one line at the end; there, `Progress` prints one plain line
when it starts, then at most one every `every_s` seconds, then one when it ends. tqdm has no such
line-per-interval mode, hence this small class around it.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Iterator
from typing import TextIO, TypeVar

from tqdm import tqdm

T = TypeVar("T")

EVERY_S = float(os.environ.get("AUTODL_PROGRESS_EVERY_S", "10"))
"""Seconds between two progress lines in a log (AUTODL_PROGRESS_EVERY_S overrides it)."""


def _plural(count: int, unit: str) -> str:
    return unit if count == 1 else unit + ("es" if unit.endswith(("s", "x", "ch", "sh")) else "s")


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


class Progress:
    """Counts work done toward `total` (None: unknown) and shows it; a context manager."""

    def __init__(self, label: str, total: int | None, unit: str = "item", *, every_s: float | None = None,
                 stream: TextIO | None = None, enabled: bool = True) -> None:
        self.label, self.total, self.unit, self.enabled = label, total, unit, enabled
        self.every_s = EVERY_S if every_s is None else every_s
        self.stream = stream or sys.stdout
        self.done = 0
        self.detail = ""
        """Extra words for the next line (the epoch, the last loss)."""
        self._started = self._last = time.monotonic()
        tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._bar = tqdm(total=total, desc=label, unit=unit, file=self.stream) if enabled and tty else None
        if enabled and self._bar is None:
            self._print(f"started ({total:,} {_plural(total, unit)})" if total is not None else "started")

    def update(self, count: int = 1, detail: str | None = None) -> None:
        self.done += count
        if detail is not None:
            self.detail = detail
        if self._bar is not None:
            self._bar.update(count)
            if detail:
                self._bar.set_postfix_str(detail, refresh=False)
            return
        now = time.monotonic()
        if self.enabled and now - self._last >= self.every_s:
            self._last = now
            self._print(self._status(now))

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        elif self.enabled:
            self._print(f"done: {self.done:,} {_plural(self.done, self.unit)} in "
                        f"{_duration(time.monotonic() - self._started)}" + (f"; {self.detail}" if self.detail else ""))
        self.enabled = False

    def iterate(self, items: Iterable[T]) -> Iterator[T]:
        """Yield `items`, counting each one as done after the caller's work on it."""
        for item in items:
            yield item
            self.update()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _status(self, now: float) -> str:
        elapsed = now - self._started
        if self.total:
            share = self.done / self.total
            left = f", about {_duration(elapsed * (1 - share) / share)} left" if self.done else ""
            head = (f"{self.done:,}/{self.total:,} {_plural(self.total, self.unit)} ({share:.0%}), "
                    f"{_duration(elapsed)} elapsed{left}")
        else:
            head = f"{self.done:,} {_plural(self.done, self.unit)}, {_duration(elapsed)} elapsed"
        return head + (f"; {self.detail}" if self.detail else "")

    def _print(self, text: str) -> None:
        print(f"{self.label}: {text}", file=self.stream, flush=True)
