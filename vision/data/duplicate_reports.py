"""What clean shows a person: the two similarity distributions behind its threshold, and example pairs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from core.fsutil import write_csv
from vision.data.duplicates import Calibration, DuplicateRule
from vision.plots import file_caption, image_grid, pyplot, save_figure

CURVE_POINTS = 51


def similarity_curves(calibration: Calibration, rule: DuplicateRule, path: Path) -> None:
    """Quantile curves (share of images -> similarity) of the nearest neighbours and of each kind of altered copy,
    with the threshold, as a CSV for `dvc plots`."""
    shares = np.linspace(0.0, 1.0, CURVE_POINTS)
    series = {"nearest_neighbour": calibration.neighbours,
              **{f"copy_{name}": values for name, values in calibration.copies.items()}}
    rows = [{"share": round(float(share), 4),
             **{name: round(float(np.quantile(values, share)), 6) if len(values) else "" for name, values
                in series.items()},
             "threshold": "" if rule.threshold is None else round(rule.threshold, 6)} for share in shares]
    write_csv(path, rows, ("share", *series, "threshold"))


def similarity_histogram(calibration: Calibration, rule: DuplicateRule, path: Path, title: str) -> None:
    figure, axis = pyplot().subplots(figsize=(7, 4), dpi=100)
    everything = np.concatenate([calibration.neighbours, *calibration.copies.values()])
    low = float(np.quantile(everything, 0.01)) if len(everything) else 0.0
    bins = np.linspace(min(low, 0.999), 1.0, 60)
    axis.hist(np.clip(calibration.neighbours, bins[0], 1.0), bins=bins, alpha=0.6, density=True,
              label=f"nearest other image ({len(calibration.neighbours)})")
    for name, values in calibration.copies.items():
        state = "told apart" if calibration.separable.get(name) else "overlaps"
        axis.hist(np.clip(values, bins[0], 1.0), bins=bins, histtype="step", linewidth=1.5, density=True,
                  label=f"{name} copy ({len(values)}, {state})")
    if rule.threshold is not None:
        axis.axvline(rule.threshold, color="black", linestyle="--",
                     label=f"threshold {rule.threshold:.4f} ({rule.mode})")
    else:
        axis.set_title("only identical embeddings count as duplicates", fontsize=9)
    axis.set_xlabel("cosine similarity of the embeddings")
    axis.set_ylabel("density")
    axis.legend(fontsize=7)
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    save_figure(figure, path)


def _thumbnail(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.array(image.convert("RGB"))


def pairs_picture(pairs: list[tuple[str, str, float, str, str]], images: Path, path: Path, title: str) -> None:
    """One row per pair (first path, second path, similarity, first label, second label)."""
    rows = [(f"{similarity:.4f}", [_thumbnail(images / a), _thumbnail(images / b)],
             [f"{label_a}\n{file_caption(a)}", f"{label_b}\n{file_caption(b)}"])
            for a, b, similarity, label_a, label_b in pairs]
    image_grid(rows or [("no pairs", [], [])], path, title, cell_in=1.6)
