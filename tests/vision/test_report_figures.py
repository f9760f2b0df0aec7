"""Report figures a person can read: big thumbnails named by file, every class in the augmentation preview,
bin counts on the reliability diagram, and Pareto labels that do not overlap."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import vision.dependability.figures as figures
import vision.plots
from core.spec.deployment import CompressionBudget
from vision.compression.variants import Variant, pareto_plot
from vision.data.dataset import SplitData
from vision.tasks.classification import SCORING
from vision.training.model import ModelConfig
from vision.training.reports import PREVIEW_COLUMNS, _examples


def _split(labels: list[int], size: int = 16) -> SplitData:
    rng = np.random.default_rng(0)
    return SplitData(rng.integers(0, 255, (len(labels), size, size, 3), dtype=np.uint8), np.array(labels),
                     [f"cameras/line-3/frame_{i:06d}.png" for i in range(len(labels))])


def test_the_augmentation_preview_takes_the_classes_in_turn() -> None:
    split = _split([0] * 40 + [1] * 5 + [2] * 5)  # sorted by class, one class far larger: the old preview's case
    _, names = _examples(split, ModelConfig("resnet10t", ["nominal", "scratch", "stain"], 16))
    assert len(names) == PREVIEW_COLUMNS
    assert names[:3] == ["nominal", "scratch", "stain"]
    assert {name: names.count(name) for name in set(names)} == {"nominal": 2, "scratch": 2, "stain": 2}


def _captured(monkeypatch) -> list:
    grids: list = []
    monkeypatch.setattr(figures, "image_grid", lambda rows, path, title, **kw: grids.append(rows))
    return grids


def test_gradcam_gallery_names_each_file_beside_its_overlay(monkeypatch, tmp_path: Path) -> None:
    grids = _captured(monkeypatch)
    test = _split([0, 1, 1, 0])
    figures.gradcam_gallery(test, np.array([0, 0, 1, 0]), [0, 1, 2], np.zeros((3, 16, 16)), ["ok", "defect"],
                            tmp_path / "g.png", "t")
    [rows] = grids
    assert rows[0][0] == "mistakes"
    assert rows[0][2] == ["frame_000001.png\ndefect -> ok", "Grad-CAM"]
    assert len(rows[1][1]) == 4  # two images with their overlays side by side


def test_image_grid_thumbnails_are_at_least_200_pixels_wide(tmp_path: Path) -> None:
    rows = [("", [np.zeros((16, 16, 3), np.uint8)] * 4, ["a\nb"] * 4)]
    vision.plots.image_grid(rows, tmp_path / "grid.png", "title")
    width, _ = Image.open(tmp_path / "grid.png").size
    assert (width - 120) / 4 >= 200  # the figure is 4 cells plus the row-label margin


def _saved_figure(monkeypatch) -> list:
    kept: list = []
    monkeypatch.setattr(vision.plots, "save_figure", lambda figure, path: kept.append(figure))
    for module in (figures,):
        monkeypatch.setattr(module, "save_figure", lambda figure, path: kept.append(figure))
    return kept


def test_the_reliability_diagram_shows_how_many_images_each_bin_holds(monkeypatch, tmp_path: Path) -> None:
    kept = _saved_figure(monkeypatch)
    after = [{"confidence": 0.55, "accuracy": 0.5, "count": 3}, {"confidence": 0.95, "accuracy": 0.97, "count": 240}]
    figures.reliability_diagram(after, after, 1.2, 0.05, 0.02, tmp_path / "r.png", "t")
    texts = {t.get_text() for t in kept[0].axes[0].texts}
    assert {"3", "240"} <= texts


def test_pareto_labels_do_not_overlap_even_when_the_points_do(monkeypatch, tmp_path: Path) -> None:
    import vision.compression.variants as variants

    kept: list = []
    monkeypatch.setattr(variants, "save_figure", lambda figure, path: kept.append(figure))

    def row(name: str, latency: float, accuracy: float, deployable: bool = True) -> Variant:
        return Variant(name, name.split("-")[0], "fp32", "onnxruntime", deployable, 1000, 10_000, 4000,
                       {"val_accuracy": accuracy, "test_accuracy": accuracy}, latency, latency)

    rows = [row("trained-torch", 1.00, 0.990, False), row("trained-fp32", 0.300, 0.990), row("trained-int8", 0.120,
            0.989), row("pruned-fp32", 0.290, 0.988), row("pruned-int8", 0.118, 0.988),
            row("pruned_distilled-fp32", 0.295, 0.989), row("pruned_distilled-int8", 0.119, 0.989)]
    pareto_plot(rows, rows[-1], CompressionBudget(max_latency_ms=0.5), 0.99, SCORING, tmp_path / "p.png", "t")
    figure = kept[0]
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    boxes = [t.get_window_extent(renderer) for t in figure.axes[0].texts]
    assert len(boxes) == len(rows)
    overlaps = [(a, b) for i, a in enumerate(boxes) for b in boxes[i + 1:] if a.overlaps(b)]
    assert not overlaps, f"{len(overlaps)} overlapping labels"


@pytest.mark.parametrize("name", ["short.png", "a" * 40 + ".png"])
def test_file_captions_keep_the_end_of_long_names(name: str) -> None:
    caption = vision.plots.file_caption(f"some/folder/{name}")
    assert len(caption) <= 30
    assert caption.endswith(name[-10:])
