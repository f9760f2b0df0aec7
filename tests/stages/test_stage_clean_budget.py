"""The clean stage stops, names the figures and the key and writes nothing, when it would lose too much data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from ruamel.yaml import YAML

from core.fsutil import write_csv
from core.spec import ProjectSpec
from stages.clean import main
from tests.stage_runs import run_stage_as_dvc
from vision.data.vectors import snap

CLASSES = ["cat", "dog"]


def _project(root: Path, vectors: np.ndarray, labels: list[str], quality: dict[str, float],
             near_duplicate_cosine: float | str = 0.9) -> None:
    ingest, embed = root / "data" / "p" / "ingest", root / "data" / "p" / "embed"
    rows = []
    rng = np.random.default_rng(0)
    for i, label in enumerate(labels):
        path = f"images/{label}/{i:03d}.png"
        (ingest / path).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(ingest / path)
        rows.append({"path": path, "label": label, "group": path, "sha256": f"{i:064x}"})
    write_csv(ingest / "manifest.csv", rows, ("path", "label", "group", "sha256"))
    embed.mkdir(parents=True)
    np.save(embed / "embeddings.npy", snap(vectors), allow_pickle=False)
    write_csv(embed / "index.csv", rows, ("path", "sha256"))
    (embed / "copies.json").write_text(json.dumps({"paths": [], "similarity": {"reencoded": [0.999] * 8}}))
    spec = ProjectSpec.model_validate({"name": "p", "classes": CLASSES, "data": {
        "sources": [{"kind": "image_folder", "path": "raw"}], "quality": {"min_images_per_class": 2, **quality},
        "cleaning": {"near_duplicate_cosine": near_duplicate_cosine}}}, strict=False)
    with (root / "params.yaml").open("w") as handle:
        YAML(typ="safe").dump({"p": spec.model_dump(mode="json")}, handle)


def _unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def _distinct(n: int, seed: int = 1) -> np.ndarray:
    return _unit(np.random.default_rng(seed).normal(size=(n, 32)))


def _run(root: Path) -> int:
    with pytest.raises(SystemExit) as exit_info:
        run_stage_as_dvc("clean", main, "p", root)
    return int(exit_info.value.code)


def _nothing_written(root: Path) -> None:
    assert not (root / "data" / "p" / "clean").exists()
    assert not (root / "reports" / "p" / "clean" / "summary.json").exists()
    assert not (root / "reports" / "p" / "clean" / "report.json").exists()
    assert (root / "reports" / "p" / "clean" / "breach.png").stat().st_size > 5_000  # the pairs to look at


def test_removing_more_than_the_budget_stops_with_the_figures(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    base = _distinct(20)
    vectors = np.concatenate([base, _unit(base[:4] + 0.01)])  # 4 copies of 24 images: 16.7% > 10%
    _project(tmp_path, vectors, [CLASSES[i % 2] for i in range(20)] + [CLASSES[i % 2] for i in range(4)], {})
    assert _run(tmp_path) == 1
    err = capsys.readouterr().err
    assert "clean would remove 4 of 24 images (16.7%; budget data.quality.max_removed_fraction 10.0%)" in err
    assert "4 near-duplicates at similarity >= 0.9000 (fixed" in err
    assert "Traceback" not in err
    _nothing_written(tmp_path)


def test_pairs_with_different_labels_over_the_budget_stop_as_possible_label_noise(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    base = _distinct(30)
    vectors = np.concatenate([base, _unit(base[:2] + 0.01)])  # 2 copies labelled the other way: 4 of 32 images
    labels = [CLASSES[i % 2] for i in range(30)] + [CLASSES[(i + 1) % 2] for i in range(2)]
    _project(tmp_path, vectors, labels, {"max_removed_fraction": 0.5, "max_conflicting_duplicates": 0.05})
    assert _run(tmp_path) == 1
    err = capsys.readouterr().err
    assert "2 near-duplicate pairs have different labels (4 images, 12.5%; budget " \
           "data.quality.max_conflicting_duplicates 5.0%)" in err
    assert "the labels are noisy" in err
    _nothing_written(tmp_path)


def test_within_budget_conflicting_pairs_stay_together_and_are_reported(tmp_path: Path) -> None:
    base = _distinct(30)
    vectors = np.concatenate([base, _unit(base[:1] + 0.01), _unit(base[2:3] + 0.01)])
    labels = [CLASSES[i % 2] for i in range(30)] + ["dog", "cat"]  # image 0 is cat: a conflict; image 2 cat: a copy
    _project(tmp_path, vectors, labels, {"max_conflicting_duplicates": 0.1})
    run_stage_as_dvc("clean", main, "p", tmp_path)
    summary = json.loads((tmp_path / "reports/p/clean/summary.json").read_text())
    assert (summary["images_in"], summary["images_out"], summary["near_duplicates_removed"],
            summary["conflicting_pairs"]) == (32, 31, 1, 1)
    manifest = (tmp_path / "data/p/clean/manifest.csv").read_text().splitlines()
    groups = {line.split(",")[0]: line.split(",")[2] for line in manifest[1:]}
    assert groups["images/dog/030.png"] == groups["images/cat/000.png"] == "images/cat/000.png"
    assert "images/cat/031.png" not in groups  # the same-label copy of image 2 is removed
    assert json.loads((tmp_path / "data/p/clean/duplicate_rule.json").read_text()) == {"mode": "fixed",
                                                                                         "threshold": 0.9}
