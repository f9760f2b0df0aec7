"""split: exact shares, class balance, determinism."""

from __future__ import annotations

from collections import Counter

import pytest

from core.spec.data import Split
from stages.runtime import StageFailure
from stages.split import assign_splits

LABELS = [str(i % 4) for i in range(400)]


def test_shares_and_stratification() -> None:
    assignment = assign_splits(LABELS, Split(train=0.7, val=0.15, test=0.15), seed=1)
    counts = Counter(assignment)
    assert counts == {"train": 280, "val": 60, "test": 60}
    for split in ("train", "val", "test"):
        per_class = Counter(label for label, s in zip(LABELS, assignment, strict=True) if s == split)
        assert len(set(per_class.values())) == 1, f"{split} is not balanced: {per_class}"


def test_same_seed_same_split_other_seed_other_split() -> None:
    split = Split()
    assert assign_splits(LABELS, split, seed=3) == assign_splits(LABELS, split, seed=3)
    assert assign_splits(LABELS, split, seed=3) != assign_splits(LABELS, split, seed=4)


def test_too_little_data_fails_with_advice() -> None:
    with pytest.raises(StageFailure, match="smallest class has 1"):
        assign_splits(["a", "b"], Split(), seed=0)


def test_loop_and_auto_labels_never_reach_validation_or_test() -> None:
    """Rows the data loop labelled (people or an accepted model prediction) are training data only, and adding
    them moves no other image between splits."""
    from stages.split import assign_with_loop

    base = [{"label": label, "group": str(i), "train_only": "False"} for i, label in enumerate(LABELS)]
    loop = [{"label": str(i % 4), "group": f"loop{i}", "train_only": "True"} for i in range(60)]
    mixed = [row for pair in zip(base[:60], loop, strict=True) for row in pair] + base[60:]
    split = Split(train=0.7, val=0.15, test=0.15)
    assignment = assign_with_loop(mixed, split, seed=2)
    assert {s for row, s in zip(mixed, assignment, strict=True) if row["train_only"] == "True"} == {"train"}
    without = assign_with_loop(base, split, seed=2)
    kept = [s for row, s in zip(mixed, assignment, strict=True) if row["train_only"] == "False"]
    assert kept == without


def test_crops_keep_the_split_of_their_source_image_in_the_detection_project() -> None:
    """A cascade is tested on the detector's test images: a crop of one must be a classifier test image too."""
    from stages.split import assign_with_loop

    base = [{"label": label, "group": str(i), "train_only": "False"} for i, label in enumerate(LABELS)]
    crops = [{"label": str(i % 4), "group": f"crop{i}", "train_only": "False", "fixed_split": ("train", "val",
              "test")[i % 3]} for i in range(30)]
    split = Split(train=0.7, val=0.15, test=0.15)
    assignment = assign_with_loop(base + crops, split, seed=2)
    assert assignment[len(base):] == [row["fixed_split"] for row in crops]
    assert assignment[:len(base)] == assign_with_loop(base, split, seed=2), "the free rows split as before"


def test_a_stratum_too_small_for_three_ways_is_split_with_the_largest_instead_of_failing(capsys) -> None:
    """Four negatives among a tagger's strata: stratified as they are, the held-out share would hold one of them
    and validation/test could not be stratified; every image is still assigned, the rest stay stratified."""
    labels = ["a"] * 300 + ["b"] * 200 + ["_none"] * 4
    split = Split(train=0.7, val=0.15, test=0.15)
    assigned = assign_splits(labels, split, seed=3)
    counts = Counter(zip(labels, assigned, strict=True))
    assert (counts["a", "val"], counts["a", "test"], counts["b", "val"], counts["b", "test"]) == (45, 45, 30, 30)
    assert sum(counts["_none", s] for s in ("train", "val", "test")) == 4
    assert "strata _none too small to stratify three ways" in capsys.readouterr().out
    assert assign_splits(labels, split, seed=3) == assigned


def test_a_split_that_works_as_stratified_is_not_pooled() -> None:
    labels = ["a"] * 60 + ["b"] * 40 + ["c"] * 9
    first = assign_splits(labels, Split(train=0.7, val=0.15, test=0.15), seed=0)
    assert Counter(s for label, s in zip(labels, first, strict=True) if label == "c")["train"] < 9
