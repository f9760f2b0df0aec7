"""The dependability report's figures: robustness heatmap, reliability diagram, OOD scores, Grad-CAM gallery."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vision.data.dataset import SplitData
from vision.dependability.explain import overlay
from vision.dependability.robustness import COLLAPSE_SHARE, CorruptionResult
from vision.plots import file_caption, image_grid, pyplot, save_figure


def robustness_heatmap(clean: float, results: list[CorruptionResult], path: Path, title: str,
                       classes: list[str] | None = None, figure_name: str = "accuracy") -> None:
    """Accuracy (or `figure_name`, e.g. a detector's mAP) per corruption (rows) x severity (columns), annotated;
    corruptions seen in training marked *; a cell where the model gives one class to nearly every image names
    that class."""
    plt = pyplot()
    if not results:
        figure, axis = plt.subplots(figsize=(6, 1.5), dpi=100)
        axis.set_axis_off()
        axis.text(0.5, 0.5, "No corruption listed in dependability.robustness.corruptions", ha="center")
        save_figure(figure, path)
        return
    names = list(dict.fromkeys(r.corruption for r in results))
    severities = sorted({r.severity for r in results})
    grid = np.full((len(names), len(severities)), np.nan)
    seen = {r.corruption: r.seen_in_training for r in results}
    collapsed = {(names.index(r.corruption), severities.index(r.severity)): r for r in results if r.collapsed}
    for r in results:
        grid[names.index(r.corruption), severities.index(r.severity)] = r.accuracy
    figure, axis = plt.subplots(figsize=(1.25 * len(severities) + 3.2, 0.5 * len(names) + 1.8), dpi=100)
    image = axis.imshow(grid, cmap="RdYlGn", vmin=0.0, vmax=1.0, aspect="auto")
    for (row, column), value in np.ndenumerate(grid):
        text = f"{value:.3f}"
        if (row, column) in collapsed:
            r = collapsed[(row, column)]
            name = classes[r.top_class] if classes and r.top_class < len(classes) else str(r.top_class)
            text += f"\nall '{name[:12]}'"
        axis.text(column, row, text, ha="center", va="center", fontsize=7 if "\n" in text else 8)
    axis.set_xticks(range(len(severities)), [f"severity {s}" for s in severities], fontsize=8)
    axis.set_yticks(range(len(names)), [f"{n}{' *' if seen[n] else ''}" for n in names], fontsize=8)
    note = (f"; all 'c' = collapsed: {COLLAPSE_SHARE:.0%}+ of images called c (accuracy = c's share)"
            if collapsed else "")
    axis.set_title(f"{title}\nclean {figure_name} {clean:.3f}; * = also a training augmentation{note}", fontsize=9)
    figure.colorbar(image, ax=axis, fraction=0.04)
    figure.tight_layout()
    save_figure(figure, path)


def reliability_diagram(before: list[dict[str, float]], after: list[dict[str, float]], temperature: float,
                        ece_before: float, ece_after: float, path: Path, title: str, y_label: str = "accuracy",
                        counted: str = "test images", error_name: str = "ECE") -> None:
    """Accuracy (or the bins' `y_label` column, e.g. a detector's precision) against confidence per bin, before
    and after temperature scaling, with the task's calibration error (`error_name`); the diagonal is perfect."""
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(5.5, 5), dpi=100)
    axis.plot([0, 1], [0, 1], "--", c="#999999", lw=1, label="perfect calibration")
    for rows, label, colour in ((before, f"raw ({error_name} {ece_before:.4f})", "#ff7f0e"),
                                (after, f"T = {temperature:.3f} ({error_name} {ece_after:.4f})", "#1f77b4")):
        axis.plot([r["confidence"] for r in rows], [r[y_label] for r in rows], "o-", c=colour, ms=4, label=label)
    for r in after:  # how many test images each point stands for: a bin of 3 says little
        axis.annotate(f"{int(r['count'])}", (r["confidence"], r[y_label]), fontsize=7, color="#1f77b4",
                      xytext=(0, -11), textcoords="offset points", ha="center")
    axis.text(0.98, 0.02, f"numbers: {counted} per bin (after scaling)", transform=axis.transAxes, fontsize=7,
              ha="right", va="bottom", color="#1f77b4")
    axis.set_xlabel("mean confidence in bin")
    axis.set_ylabel(f"{y_label} in bin")
    axis.set_xlim(0, 1.02)
    axis.set_ylim(0, 1.02)
    axis.set_title(title, fontsize=10)
    axis.legend(fontsize=8, loc="upper left")
    figure.tight_layout()
    save_figure(figure, path)


def ood_histogram(scores: dict[str, np.ndarray], kinds: dict[str, str], threshold: float, detector: str,
                  path: Path, title: str) -> None:
    """The chosen detector's score distribution on the test split and on each OOD set, with the threshold."""
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(7.5, 4.2), dpi=100)
    values = np.concatenate(list(scores.values()))
    bins = np.linspace(float(values.min()), float(values.max()) + 1e-9, 50)
    for name, data in scores.items():
        label = "test (in distribution)" if name == "test" else f"{name} ({kinds[name]})"
        axis.hist(data, bins=bins, histtype="step" if name != "test" else "stepfilled", alpha=0.9 if name != "test"
                  else 0.35, lw=1.4, label=label, density=True)
    axis.axvline(threshold, c="#d62728", lw=1.2, label="serving threshold (95% of validation accepted)")
    axis.set_xlabel(f"{detector} score (higher = more likely out of distribution)")
    axis.set_ylabel("density")
    axis.set_title(title, fontsize=10)
    axis.legend(fontsize=7)
    figure.tight_layout()
    save_figure(figure, path)


def gradcam_gallery(test: SplitData, predicted: np.ndarray, indices: list[int], maps: np.ndarray,
                    classes: list[str], path: Path, title: str) -> None:
    """Image and Grad-CAM overlay side by side, mistakes first, captioned with the file name and
    `true -> predicted`."""
    rows: list[tuple[str, list[np.ndarray], list[str]]] = []
    per_row = 2  # image, overlay, image, overlay: four cells a row
    wrong = [k for k, i in enumerate(indices) if test.labels[i] != predicted[i]]
    right = [k for k, i in enumerate(indices) if test.labels[i] == predicted[i]]
    for label, group in (("mistakes", wrong), ("correct", right)):
        for start in range(0, len(group), per_row):
            images, captions = [], []
            for k in group[start:start + per_row]:
                i = indices[k]
                images += [test.images[i], overlay(test.images[i], maps[k])]
                captions += [f"{file_caption(test.paths[i])}\n{classes[test.labels[i]]} -> {classes[predicted[i]]}",
                             "Grad-CAM"]
            rows.append((label, images, captions))
    image_grid(rows or [("", [np.full((8, 8, 3), 255, np.uint8)], ["nothing to explain"])], path, title)
