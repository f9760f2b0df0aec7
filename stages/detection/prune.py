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

from core.fsutil import read_csv, write_json
from core.spec.data import Pruning
from stages.prune import training_rows, write_selection
from stages.runtime import StageContext, run_stage
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
    boxes_of: dict[str, Counter[str]] = {}
    for box in read_csv(ctx.input("boxes")):
        boxes_of.setdefault(box["path"], Counter())[box["label"]] += 1
    data = training_rows(ctx)
    selected = select_per_class(data.vectors, [r["label"] for r in data.train], pruning.budget, pruning.method,
                                ctx.spec("seed")) | data.fixed
    keep, restored = keep_instances(selected, [r["path"] for r in data.train], boxes_of, minimum)
    kept_paths = write_selection(ctx, data, keep, pruning.method)
    before = Counter(label for r in data.train for label in boxes_of.get(r["path"], Counter()).elements())
    after = Counter(label for r in data.train if r["path"] in kept_paths
                    for label in boxes_of.get(r["path"], Counter()).elements())
    write_json(ctx.output("summary"), {"method": pruning.method, "budget": pruning.budget,
                                       "train_before": len(data.train), "train_after": int(keep.sum()),
                                       "restored_for_min_instances": restored,
                                       "boxes_before": sum(before.values()), "boxes_after": sum(after.values()),
                                       "instances_per_class_after": {c: after[c] for c in sorted(before)}})
    print(f"prune: {pruning.method} kept {int(keep.sum())} of {len(data.train)} training images (budget "
          f"{pruning.budget:g}), {restored} restored so every class keeps {minimum} boxes")


if __name__ == "__main__":
    from core.contracts.detection.prune import CONTRACT

    run_stage(CONTRACT, main)
