"""prune (detection): keep the most useful data.pruning.budget share of the training images, then make sure
every class keeps at least data.boxes.min_instances_per_class boxes.

Selection runs per stratum (an image's rarest class, see stages.detection.ingest) with the same selectors
as classification. Pruning images drops their boxes too, so a rare class can fall below what a detector
needs to learn it: dropped images holding that class come back, most boxes of it first, until the class
has its minimum (or everything the training split has of it). The summary says how many came back.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from core.fsutil import atomic_directory, read_csv, write_csv, write_json
from core.spec.data import Pruning
from stages.prune import projection_rows, save_projection_png
from stages.runtime import StageContext, run_stage
from vision.data.embedding import load_embeddings
from vision.data.selection import select_per_class


def keep_instances(keep: np.ndarray, paths: list[str], boxes_of: dict[str, Counter[str]], minimum: int
                   ) -> tuple[np.ndarray, int]:
    """`keep` with dropped images restored until each class has `minimum` boxes among kept images (or all the
    split has); returns (the new mask, images restored). Deterministic: most boxes of the class first, then
    split order."""
    keep = keep.copy()
    restored = 0
    classes = sorted({label for counts in boxes_of.values() for label in counts})
    for label in classes:
        have = sum(boxes_of.get(paths[i], Counter())[label] for i in np.flatnonzero(keep))
        candidates = sorted((i for i in np.flatnonzero(~keep) if boxes_of.get(paths[i], Counter())[label]),
                            key=lambda i: (-boxes_of[paths[i]][label], i))
        for i in candidates:
            if have >= minimum:
                break
            keep[i] = True
            have += boxes_of[paths[i]][label]
            restored += 1
    return keep, restored


def main(ctx: StageContext) -> None:
    pruning: Pruning = ctx.spec("data.pruning")
    minimum: int = ctx.spec("data.boxes.min_instances_per_class")
    rows = read_csv(ctx.input("split"))
    boxes_of: dict[str, Counter[str]] = {}
    for box in read_csv(ctx.input("boxes")):
        boxes_of.setdefault(box["path"], Counter())[box["label"]] += 1
    vectors, paths = load_embeddings(ctx.input("embeddings"))
    row_of = {path: i for i, path in enumerate(paths)}
    train = [r for r in rows if r["split"] == "train"]
    train_vectors = vectors[[row_of[r["path"]] for r in train]]
    strata = [r["label"] for r in train]
    selected = select_per_class(train_vectors, strata, pruning.budget, pruning.method, ctx.spec("seed"))
    keep, restored = keep_instances(selected, [r["path"] for r in train], boxes_of, minimum)
    kept_paths = {r["path"] for r, k in zip(train, keep, strict=True) if k}
    with atomic_directory(ctx.output("pruned")) as out:
        write_csv(out / ctx.inside("split"), [{**r, "split": "pruned"} if r["split"] == "train" and r["path"] not in
                                              kept_paths else r for r in rows])
    before = Counter(label for r in train for label in boxes_of.get(r["path"], Counter()).elements())
    after = Counter(label for r in train if r["path"] in kept_paths
                    for label in boxes_of.get(r["path"], Counter()).elements())
    write_json(ctx.output("summary"), {"method": pruning.method, "budget": pruning.budget,
                                       "train_before": len(train), "train_after": int(keep.sum()),
                                       "restored_for_min_instances": restored,
                                       "boxes_before": sum(before.values()), "boxes_after": sum(after.values()),
                                       "instances_per_class_after": {c: after[c] for c in sorted(before)}})
    projection = projection_rows(train_vectors, strata, keep, ctx.spec("seed"))
    write_csv(ctx.output("projection"), projection, ("x", "y", "label", "kept"))
    save_projection_png(projection, ctx.output("projection_png"),
                        f"{ctx.project}: {pruning.method} keeps {int(keep.sum())} of {len(train)} training images")
    print(f"prune: {pruning.method} kept {int(keep.sum())} of {len(train)} training images (budget "
          f"{pruning.budget:g}), {restored} restored so every class keeps {minimum} boxes")


if __name__ == "__main__":
    run_stage("prune", main, task="detection")
