"""Progress shows in a log as plain lines at a steady rate, and as tqdm's bar on a terminal."""

from __future__ import annotations

import io
import time

import pytest

import core.progress
from core.progress import Progress


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_log_gets_a_start_line_steady_updates_and_an_end_line() -> None:
    log = io.StringIO()
    with Progress("embed", 4, unit="image", every_s=0, stream=log) as shown:
        for done in range(4):
            shown.update(1, f"batch {done + 1}")
    lines = log.getvalue().splitlines()
    assert lines[0] == "embed: started (4 images)"
    assert lines[1].startswith("embed: 1/4 images (25%), 0 s elapsed, about ")
    assert lines[1].endswith("; batch 1")
    assert lines[4].startswith("embed: 4/4 images (100%)")
    assert lines[5] == "embed: done: 4 images in 0 s; batch 4"
    assert "\r" not in log.getvalue()


def test_lines_are_spaced_by_the_interval_not_by_the_work() -> None:
    log = io.StringIO()
    with Progress("train", None, unit="batch", every_s=0.05, stream=log) as shown:
        for _ in range(30):
            shown.update()
            time.sleep(0.01)
    lines = log.getvalue().splitlines()
    assert 3 <= len(lines) - 2 <= 8  # about 0.3 s of work at one line per 0.05 s, not one line per batch
    assert lines[-1].startswith("train: done: 30 batches in ")


def test_a_terminal_gets_tqdm_and_no_plain_lines() -> None:
    terminal = _Terminal()
    with Progress("ingest", 3, stream=terminal) as shown:
        shown.update(3)
    assert "ingest: started" not in terminal.getvalue()
    assert "3/3" in terminal.getvalue()  # tqdm's bar


def test_disabled_progress_prints_nothing() -> None:
    log = io.StringIO()
    with Progress("x", 2, stream=log, enabled=False) as shown:
        shown.update(2)
    assert log.getvalue() == ""


@pytest.mark.slow
def test_training_with_redirected_output_reports_epochs_as_they_pass(tiny_digits, capsys, monkeypatch) -> None:
    from core.spec.training import TrainSection
    from tests.conftest import TINY_CLASSES
    from vision.data.dataset import load_split
    from vision.training.fit import fit
    from vision.training.model import ModelConfig, build_model

    monkeypatch.setattr(core.progress, "EVERY_S", 0.0)
    train, val = (load_split(tiny_digits / "ingest", tiny_digits / "split.csv", s, TINY_CLASSES, 16)
                  for s in ("train", "val"))
    fit(build_model(ModelConfig("resnet10t", TINY_CLASSES, 16)), train, val, TrainSection(epochs=2, batch_size=16),
        0, label="train")
    out = capsys.readouterr().out  # captured: not a terminal, as in CI or `make demo > log`
    lines = [line for line in out.splitlines() if line.startswith("train: ")]
    assert lines[0].startswith("train: started (")
    assert any("epoch 2/2" in line for line in lines)
    assert any("epoch 1 val loss" in line for line in lines)
    assert lines[-1].startswith("train: done: ")
    assert "\r" not in out
