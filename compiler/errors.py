"""User-facing errors: every problem with a spec is reported like a compiler diagnostic."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class Diagnostic:
    """One problem at one place in one spec file (line and column are 1-based)."""

    file: str
    line: int
    column: int
    path: str
    """Dotted field path such as `data.pruning.budget`; empty for file-level problems."""
    message: str
    hint: str | None = None

    def format(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}: "
        text = where + (f"{self.path}: " if self.path else "") + self.message
        return text + (f"\n    hint: {self.hint}" if self.hint else "")


class SpecError(Exception):
    """Raised with every diagnostic found; the CLI prints them all and exits 2."""

    def __init__(self, diagnostics: list[Diagnostic]):
        self.diagnostics = sorted(diagnostics)
        super().__init__("\n".join(d.format() for d in self.diagnostics))


def dotted(path: tuple[str | int, ...]) -> str:
    """`('data', 'sources', 0, 'path')` -> `data.sources[0].path`."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text
