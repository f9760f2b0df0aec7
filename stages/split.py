"""split: assign every ingested image to train, val or test, stratified by class and seeded.

Writes `split.csv` (path, label, split). Later stages read splits from here
only, so the test set can never leak into training by a second random draw.
"""

from __future__ import annotations

import csv
from collections import Counter

from sklearn.model_selection import train_test_split

from compiler.fsutil import atomic_directory
from compiler.spec.data import Split
from stages._cli import StageContext, StageFailure, run_stage

SPLITS = ("train", "val", "test")


def assign_splits(labels: list[str], split: Split, seed: int) -> list[str]:
    """One of 'train'/'val'/'test' per label, in input order; same input and seed, same answer."""
    indices = list(range(len(labels)))
    holdout = split.val + split.test
    try:
        train_idx, rest_idx = train_test_split(
            indices, test_size=holdout, random_state=seed, stratify=labels if split.stratify else None)
        rest_labels = [labels[i] for i in rest_idx]
        val_idx, test_idx = train_test_split(
            rest_idx, test_size=split.test / holdout, random_state=seed,
            stratify=rest_labels if split.stratify else None)
    except ValueError as exc:
        smallest = min(Counter(labels).values()) if labels else 0
        raise StageFailure(f"cannot split {len(labels)} images (smallest class has {smallest}): {exc}. "
                           "Add data, or set data.split.stratify: false") from None
    assignment = [""] * len(labels)
    for name, chosen in zip(SPLITS, (train_idx, val_idx, test_idx), strict=True):
        for i in chosen:
            assignment[i] = name
    return assignment


def main(ctx: StageContext) -> None:
    with (ctx.dep(0) / "manifest.csv").open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    split = Split.model_validate(ctx.params["data"]["split"])
    assignment = assign_splits([row["label"] for row in rows], split, ctx.params["seed"])
    with atomic_directory(ctx.out()) as out, (out / "split.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(("path", "label", "split"))
        writer.writerows((row["path"], row["label"], name) for row, name in zip(rows, assignment, strict=True))
    counts = Counter(assignment)
    print("split: " + ", ".join(f"{name} {counts[name]}" for name in SPLITS))


if __name__ == "__main__":
    run_stage("split", main)
