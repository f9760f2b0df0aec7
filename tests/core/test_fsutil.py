"""Atomic writes: all or nothing, and the result is as readable as a file written the plain way."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from core.fsutil import atomic_directory, write_atomically, write_text_atomically
from vision.plots import pyplot, save_figure


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def umask_022():
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def test_written_files_and_folders_get_the_usual_permissions_not_private_temp_ones(tmp_path: Path,
                                                                                    umask_022) -> None:
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    write_text_atomically(tmp_path / "report.json", "{}\n")
    with atomic_directory(tmp_path / "out") as out:
        (out / "model.onnx").write_bytes(b"onnx")
    figure = pyplot().figure()
    save_figure(figure, tmp_path / "plot.png")
    assert _mode(tmp_path / "report.json") == _mode(plain) == 0o644
    assert _mode(tmp_path / "plot.png") == 0o644
    assert _mode(tmp_path / "out") == 0o755


def test_a_failed_directory_write_keeps_the_previous_output(tmp_path: Path) -> None:
    write_atomically({"out/kept.txt": "old\n"}, tmp_path)
    def crash() -> None:
        with atomic_directory(tmp_path / "out") as out:
            (out / "new.txt").write_text("half")
            raise RuntimeError("crash half-way")

    with pytest.raises(RuntimeError):
        crash()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["kept.txt"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no scratch left behind
