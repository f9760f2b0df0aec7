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
    attempts, failures = [strata], []
    if strata and (pooled := pooled_small_strata(strata, split.val + split.test)) != strata:
        attempts.append(pooled)  # tried only when the strata as they are fail
    for attempt in attempts:
        try:
            chosen = _three_ways(units, attempt, split, seed)
            break
        except ValueError as exc:
            failures.append(exc)
    else:
        smallest = min(Counter(unit_label.values()).values()) if units else 0
        raise StageFailure(f"cannot split {len(units)} images/groups (smallest class has {smallest}): {failures[0]}. "
                           "Add data, or set data.split.stratify: false")
    if attempt is not strata:
        joined = sorted(set(strata or ()) - set(attempt or ()))
        print(f"split: strata {', '.join(joined)} too small to stratify three ways; split with the largest stratum")
    where = {g: name for name, units_of in zip(SPLITS, chosen, strict=True) for g in units_of}
    return [where[g] for g in groups]


def _three_ways(units: list[str], strata: list[str] | None, split: Split, seed: int
                ) -> tuple[list[str], list[str], list[str]]:
    holdout = split.val + split.test
    train_units, rest_units = train_test_split(units, test_size=holdout, random_state=seed, stratify=strata)
    rest_strata = None
    if strata is not None:
        stratum_of = dict(zip(units, strata, strict=True))
        rest_strata = [stratum_of[g] for g in rest_units]
    val_units, test_units = train_test_split(rest_units, test_size=split.test / holdout, random_state=seed,
                                             stratify=rest_strata)
    return train_units, val_units, test_units


def pooled_small_strata(strata: list[str], holdout: float) -> list[str]:
    """The strata with each one too small to leave two images in the held-out share (so that validation and
    test can be stratified too) joined to the largest stratum. Only the stratification changes: every image is
    kept. Used when a stratified split of the strata as they are fails (a tagger's or detector's rare
    combination of labels, a handful of negatives), never otherwise, so a split that worked is unchanged."""
    counts = Counter(strata)
    largest = max(counts, key=lambda s: (counts[s], s))
    return [largest if counts[s] * holdout < 2 else s for s in strata]


def cross_split_near_duplicates(vectors: np.ndarray, assignment: list[str], rule: DuplicateRule) -> int:
    """How many val/test images have a near-duplicate among the training images under `rule` (leakage)."""
    split = np.array(assignment)
    return int(np.sum(duplicated_in(vectors[split != "train"], vectors[split == "train"], rule)))


def is_train_only(row: dict[str, str]) -> bool:
    """Manifest rows the data loop labelled (or a model auto-labelled): training data, never val or test."""
    return row.get("train_only", "").lower() == "true"


def fixed_split(row: dict[str, str]) -> str:
    """The split a manifest row must land in, or "" when the split stage decides: train for the data loop's
    rows, the source image's split for a crop of a detection project."""
    return "train" if is_train_only(row) else row.get("fixed_split", "")


def assign_with_loop(rows: list[dict[str, str]], split: Split, seed: int) -> list[str]:
    """The split of every manifest row: rows with a fixed split keep it; the rest are split as `assign_splits`
    does, exactly as they would be without the fixed rows (adding a loop round moves no test image)."""
    free = [r for r in rows if not fixed_split(r)]
    assigned = iter(assign_splits([r["label"] for r in free], split, seed, [r["group"] for r in free]) if free else [])
    return [fixed_split(r) or next(assigned) for r in rows]


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
