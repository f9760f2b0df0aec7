"""Atomic writes of generated files, reports and tables: readers see the old text or the new, never half of one."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def publish_mode(path: str | Path, directory: bool = False) -> None:
    """Give a temp file or folder the mode a plain `open()` or `mkdir()` would have.

    mkstemp and mkdtemp create them private (0600 / 0700), which is right while they are being written and
    wrong once they are renamed into place: reports and models must stay readable by the rest of the team.
    """
    os.chmod(path, (0o777 if directory else 0o666) & ~_umask())


def write_atomically(files: dict[str, str], root: Path) -> list[str]:
    """Write every changed file; stage all temp files first so a failure leaves no file half-written.

    Returns the paths whose content changed.
    """
    changed = {path: text for path, text in files.items() if read_text_or_none(root / path) != text}
    staged: list[tuple[str, Path]] = []
    try:
        for path, text in changed.items():
            target = root / path
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
            publish_mode(tmp)
            with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            staged.append((path, Path(tmp)))
        for path, tmp in staged:
            os.replace(tmp, root / path)
    finally:
        for _, tmp in staged:
            tmp.unlink(missing_ok=True)
    return sorted(changed)


def write_text_atomically(path: Path, text: str) -> None:
    """Write one file through a temp file in the same folder and a rename."""
    write_atomically({path.name: text}, path.parent)


def read_text_or_none(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None


@contextmanager
def atomic_directory(target: Path) -> Iterator[Path]:
    """Yield a scratch directory that replaces `target` only if the block finishes without error.

    Stage outputs are whole directories; a crash half-way must leave the previous
    output (or nothing), never a mix that DVC would then cache.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    publish_mode(scratch, directory=True)
    try:
        yield scratch
        if target.exists():
            old = target.with_name(f".{target.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(target, old)
            os.replace(scratch, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(scratch, target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def write_json(path: Path, data: Any) -> None:
    """Metrics and reports: stable formatting so `git diff` and `dvc metrics diff` stay readable."""
    write_text_atomically(path, json.dumps(data, indent=2) + "\n")


def write_csv(path: Path, rows: list[dict[str, Any]], fields: tuple[str, ...] | None = None) -> None:
    """Manifests, tables and plot data: one header, `\n` line ends, written atomically.

    `fields` picks and orders the columns (other keys are left out); by default every key of the rows in
    first-seen order (rows may differ, as trials with different searched params do). Missing values are empty.
    """
    columns = list(fields) if fields else list(dict.fromkeys(key for row in rows for key in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomically(path, buffer.getvalue())


def read_json(path: Path) -> Any:
    """What an earlier stage wrote with write_json."""
    return json.loads(path.read_text(encoding="utf-8"))


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))
