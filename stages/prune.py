"""prune: keep the most useful `data.pruning.budget` share of every class of the training split.

Selection works on the cached embeddings (stages/_pruning.py holds the
methods). Validation and test rows are never touched. Writes `split.csv` with
dropped training rows marked `pruned`, per-class counts as metrics, and a 2-D
projection of the training embeddings (kept vs dropped) as a DVC plot and PNG.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.decomposition import PCA

from core.fsutil import atomic_directory, read_csv, write_csv, write_json
from core.spec.data import Pruning
from stages.runtime import StageContext, run_stage
from vision.data.selection import select_per_class
from vision.data.vectors import load_embeddings
from vision.plots import pyplot, save_figure


def projection_rows(vectors: np.ndarray, labels: list[str], keep: np.ndarray, seed: int) -> list[dict[str, object]]:
    points = PCA(n_components=2, random_state=seed).fit_transform(vectors) if len(vectors) > 2 else (
        np.zeros((len(vectors), 2)))
    return [{"x": round(float(x), 5), "y": round(float(y), 5), "label": label, "kept": "kept" if k else "dropped"}
            for (x, y), label, k in zip(points, labels, keep, strict=True)]


def save_projection_png(rows: list[dict[str, object]], path: Path, title: str) -> None:
    figure, axis = pyplot().subplots(figsize=(6, 5), dpi=100)
    for state, style in (("dropped", {"c": "#bbbbbb", "s": 8}), ("kept", {"c": "#1f77b4", "s": 10})):
        chosen = [r for r in rows if r["kept"] == state]
        axis.scatter([r["x"] for r in chosen], [r["y"] for r in chosen], label=f"{state} ({len(chosen)})", **style)
    axis.set_title(title)
    axis.set_xlabel("PC 1")
    axis.set_ylabel("PC 2")
    axis.legend()
    figure.tight_layout()
    save_figure(figure, path)


@dataclass(frozen=True)
class TrainingRows:
    """The split file's rows, its training rows and their embeddings, in split order."""

    rows: list[dict[str, str]]
    train: list[dict[str, str]]
    vectors: np.ndarray

    @property
    def fixed(self) -> np.ndarray:
        """Training rows the data loop labelled: people were asked for them, so pruning always keeps them."""
        return np.array([r.get("train_only", "").lower() == "true" for r in self.train], dtype=bool)


def training_rows(ctx: StageContext) -> TrainingRows:
    rows = read_csv(ctx.input("split"))
    vectors, paths = load_embeddings(ctx.input("embeddings"))
    row_of = {path: i for i, path in enumerate(paths)}
    train = [r for r in rows if r["split"] == "train"]
    return TrainingRows(rows, train, vectors[[row_of[r["path"]] for r in train]])


def write_selection(ctx: StageContext, data: TrainingRows, keep: np.ndarray, method: str) -> set[str]:
    """The split file with dropped training rows marked `pruned`, and the projection (CSV for `dvc plots`, PNG);
    returns the kept training paths."""
    kept_paths = {r["path"] for r, k in zip(data.train, keep, strict=True) if k}
    with atomic_directory(ctx.output("pruned")) as out:
        write_csv(out / ctx.inside("split"), [{**r, "split": "pruned"} if r["split"] == "train" and r["path"] not in
                                              kept_paths else r for r in data.rows])
    projection = projection_rows(data.vectors, [r["label"] for r in data.train], keep, ctx.spec("seed"))
    write_csv(ctx.output("projection"), projection, ("x", "y", "label", "kept"))
    save_projection_png(projection, ctx.output("projection_png"),
                        f"{ctx.project}: {method} keeps {int(keep.sum())} of {len(data.train)} training images")
    return kept_paths


def main(ctx: StageContext) -> None:
    pruning: Pruning = ctx.spec("data.pruning")
    data = training_rows(ctx)
    labels = [r["label"] for r in data.train]
    keep = select_per_class(data.vectors, labels, pruning.budget, pruning.method, ctx.spec("seed")) | data.fixed
    write_selection(ctx, data, keep, pruning.method)
    before, after = Counter(labels), Counter(label for label, k in zip(labels, keep, strict=True) if k)
    write_json(ctx.output("summary"), {"method": pruning.method, "budget": pruning.budget,
                              "train_before": len(labels), "train_after": int(keep.sum()),
                              "per_class_after": {label: after[label] for label in sorted(before)}})
    print(f"prune: {pruning.method} kept {int(keep.sum())} of {len(labels)} training images "
          f"(budget {pruning.budget:g})")


if __name__ == "__main__":
    from core.contracts.classification.prune import CONTRACT

    run_stage(CONTRACT, main)
