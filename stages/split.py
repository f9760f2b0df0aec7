"""split: assign every cleaned image to train, val or test: stratified, group-aware, seeded.

Images of one group (the frames of one video) always share a split. Images the
data loop labelled, and auto-labels, are training data only. After the
split a leakage check looks for validation or test images that are near-duplicates
of a training image under the rule clean chose (`duplicate_rule.json`); there must
be none (cleaning removed them, or put a conflicting pair in one group).
"""

from __future__ import annotations

from collections import Counter

import numpy as np
from sklearn.model_selection import train_test_split

from core.fsutil import atomic_directory, read_csv, read_json, write_csv, write_json
from core.spec.data import Split
from stages.runtime import StageContext, StageFailure, run_stage
from vision.data.duplicates import DuplicateRule, duplicated_in
from vision.data.vectors import load_embeddings

SPLITS = ("train", "val", "test")


def assign_splits(labels: list[str], split: Split, seed: int, groups: list[str] | None = None) -> list[str]:
    """One of 'train'/'val'/'test' per image, in input order; same input and seed, same answer."""
    groups = groups or [str(i) for i in range(len(labels))]
    per_group: dict[str, Counter[str]] = {}  # insertion order = first-seen order, independent of hashing
    for label, group in zip(labels, groups, strict=True):
        per_group.setdefault(group, Counter())[label] += 1
    units = list(per_group)
    unit_label = {g: counts.most_common(1)[0][0] for g, counts in per_group.items()}
    strata = [unit_label[g] for g in units] if split.stratify else None
    holdout = split.val + split.test
    try:
        train_units, rest_units = train_test_split(units, test_size=holdout, random_state=seed, stratify=strata)
        rest_strata = [unit_label[g] for g in rest_units] if split.stratify else None
        val_units, test_units = train_test_split(rest_units, test_size=split.test / holdout, random_state=seed,
                                                 stratify=rest_strata)
    except ValueError as exc:
        smallest = min(Counter(unit_label.values()).values()) if units else 0
        raise StageFailure(f"cannot split {len(units)} images/groups (smallest class has {smallest}): {exc}. "
                           "Add data, or set data.split.stratify: false") from None
    where = {g: name for name, chosen in zip(SPLITS, (train_units, val_units, test_units), strict=True)
             for g in chosen}
    return [where[g] for g in groups]


def cross_split_near_duplicates(vectors: np.ndarray, assignment: list[str], rule: DuplicateRule) -> int:
    """How many val/test images have a near-duplicate among the training images under `rule` (leakage)."""
    split = np.array(assignment)
    return int(np.sum(duplicated_in(vectors[split != "train"], vectors[split == "train"], rule)))


def is_train_only(row: dict[str, str]) -> bool:
    """Manifest rows the data loop labelled (or a model auto-labelled): training data, never val or test."""
    return row.get("train_only", "").lower() == "true"


def assign_with_loop(rows: list[dict[str, str]], split: Split, seed: int) -> list[str]:
    """The split of every manifest row: train-only rows go to train; the rest are split as `assign_splits`
    does, exactly as they would be without the loop's rows (adding a round moves no test image)."""
    free = [r for r in rows if not is_train_only(r)]
    assigned = iter(assign_splits([r["label"] for r in free], split, seed, [r["group"] for r in free]) if free else [])
    return ["train" if is_train_only(r) else next(assigned) for r in rows]


def main(ctx: StageContext) -> None:
    rows = read_csv(ctx.input("manifest"))
    split: Split = ctx.spec("data.split")
    assignment = assign_with_loop(rows, split, ctx.spec("seed"))
    vectors, paths = load_embeddings(ctx.input("embeddings"))
    row_of = {path: i for i, path in enumerate(paths)}
    leaks = cross_split_near_duplicates(vectors[[row_of[r["path"]] for r in rows]], assignment,
                                        DuplicateRule.from_dict(read_json(ctx.input("rule"))))
    counts = Counter(assignment)
    write_json(ctx.output("summary"), {**{name: counts[name] for name in SPLITS}, "cross_split_near_duplicates": leaks})
    if leaks:
        raise StageFailure(f"{leaks} validation/test images are near-duplicates of training images")
    with atomic_directory(ctx.output("splits")) as out:
        write_csv(out / ctx.inside("split"), [{"path": r["path"], "label": r["label"], "group": r["group"],
                                               "split": name, "train_only": is_train_only(r)}
                                              for r, name in zip(rows, assignment, strict=True)])
    print("split: " + ", ".join(f"{name} {counts[name]}" for name in SPLITS) + ", no cross-split near-duplicates")


if __name__ == "__main__":
    from core.contracts.shared.split import CONTRACT

    run_stage(CONTRACT, main)
