"""Near-duplicates, leakage, group-aware splits and every pruning method on small exact cases."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from core.spec.data import Split
from stages.clean import sort_duplicates
from stages.split import assign_splits, cross_split_near_duplicates
from vision.data.duplicates import DuplicateRule, duplicate_pairs, fixed_rule
from vision.data.selection import SELECTORS, budget_count, select_per_class
from vision.data.vectors import snap


def _unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def _clusters(n_per_class: int = 60, classes: int = 3, dim: int = 16, seed: int = 0) -> tuple[np.ndarray, list[str]]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(classes, dim)) * 3
    vectors = np.concatenate([centres[c] + rng.normal(size=(n_per_class, dim)) for c in range(classes)])
    return _unit(vectors), [str(c) for c in range(classes) for _ in range(n_per_class)]


def _rows(paths: list[str], labels: list[str]) -> list[dict[str, str]]:
    return [{"path": p, "label": label, "group": p} for p, label in zip(paths, labels, strict=True)]


def test_near_duplicates_keep_the_first_and_keep_label_conflicts_together() -> None:
    base = _unit(np.eye(4, 8) + 0.01)
    vectors = snap(np.concatenate([base, _unit(base[[0, 2]] + 0.001)]))  # rows 4, 5 copy rows 0, 2
    labels = ["x", "x", "y", "y", "x", "x"]
    rows = _rows(["a", "b", "c", "d", "a2", "c2"], labels)
    result = sort_duplicates(rows, duplicate_pairs(vectors, fixed_rule(0.97)))
    assert result.keep == [True, True, True, True, False, True]  # c2 (label x) copies c (label y): both stay
    assert [(d.kept, d.dropped) for d in result.near_duplicates] == [("a", "a2")]
    assert [(d.kept, d.dropped, d.kept_label, d.dropped_label) for d in result.conflicts] == [("c", "c2", "y", "x")]
    assert result.groups == ["a", "b", "c", "d", "a2", "c"]  # the conflicting pair shares a split group


def test_threshold_one_keeps_everything_distinct() -> None:
    vectors, labels = _clusters()
    result = sort_duplicates(_rows([str(i) for i in range(len(labels))], labels),
                             duplicate_pairs(snap(vectors), fixed_rule(1.0)))
    assert all(result.keep)
    assert result.near_duplicates == result.conflicts == []


def test_leakage_check_counts_held_out_near_copies_of_training_images() -> None:
    vectors, _ = _clusters(n_per_class=10)
    vectors = snap(np.concatenate([vectors, vectors[:2]]))  # two exact copies
    assignment = ["train"] * 30 + ["test", "val"]
    assert cross_split_near_duplicates(vectors, assignment, fixed_rule(0.97)) == 2
    assert cross_split_near_duplicates(vectors[:30], ["train"] * 20 + ["test"] * 10, fixed_rule(0.999)) == 0
    exact_only = DuplicateRule("auto-exact", None, "")
    assert cross_split_near_duplicates(vectors, assignment, exact_only) == 2


def test_groups_stay_in_one_split() -> None:
    labels = [str(i % 2) for i in range(200)]
    groups = [f"video{i // 5}" for i in range(200)]  # 40 videos of 5 frames
    assignment = assign_splits(labels, Split(train=0.6, val=0.2, test=0.2), seed=3, groups=groups)
    by_group: dict[str, set[str]] = {}
    for group, split in zip(groups, assignment, strict=True):
        by_group.setdefault(group, set()).add(split)
    assert all(len(splits) == 1 for splits in by_group.values())
    assert Counter(assignment) == {"train": 120, "val": 40, "test": 40}


@pytest.mark.parametrize("method", [*sorted(SELECTORS), "hybrid"])
@pytest.mark.parametrize("budget", [0.1, 0.25, 0.5, 0.9, 1.0])
def test_each_method_keeps_exactly_the_budget_per_class(method: str, budget: float) -> None:
    vectors, labels = _clusters(n_per_class=57)
    keep = select_per_class(vectors, labels, budget, method, seed=1)
    kept = Counter(label for label, k in zip(labels, keep, strict=True) if k)
    assert kept == {label: budget_count(57, budget) for label in set(labels)}
    again = select_per_class(vectors, labels, budget, method, seed=1)
    assert np.array_equal(keep, again), "same seed, same selection"


def test_budget_count_rounds_and_keeps_at_least_one() -> None:
    assert [budget_count(n, 0.5) for n in (0, 1, 3, 10)] == [0, 1, 2, 5]
    assert budget_count(10, 0.01) == 1


def test_kcenter_covers_every_cluster_with_few_picks() -> None:
    vectors, labels = _clusters(n_per_class=40, classes=4)
    picks = SELECTORS["kcenter"](vectors, 4, 0)
    assert {labels[i] for i in picks} == {"0", "1", "2", "3"}


def test_semdedup_drops_redundant_copies_first() -> None:
    vectors, _ = _clusters(n_per_class=30, classes=1)
    doubled = np.concatenate([vectors, vectors[:10]])  # ten exact copies are the most redundant images
    kept = set(SELECTORS["semdedup"](doubled, 30, 0).tolist())
    assert all(not ({i, 30 + i} <= kept) for i in range(10)), "a copy and its original both survived"


def test_hybrid_keeps_the_proxy_s_hardest_consistent_image_of_each_cluster() -> None:
    """Two classes along one axis: images near the boundary are hard, images past it look like the other class
    (mislabelled, or ambiguous): the hybrid takes the hard ones and never the ones the proxy disagrees with."""
    from vision.data.selection import hybrid_selection, proxy_agreement

    rng = np.random.default_rng(0)
    a = np.stack([rng.uniform(0.2, 1.0, 60), rng.normal(0, 0.05, 60)], axis=1)
    b = np.stack([rng.uniform(-1.0, -0.2, 60), rng.normal(0, 0.05, 60)], axis=1)
    wrong = np.array([[-0.8, 0.0], [-0.9, 0.02]])  # labelled "a" but lying among the b images
    vectors = np.concatenate([a, wrong, b]).astype(np.float32)
    labels = ["a"] * 62 + ["b"] * 60
    agreement = proxy_agreement(vectors, labels, seed=0)
    assert (agreement[60:62] < 0).all(), "the proxy disagrees with the two mislabelled images"
    rows = np.arange(62)
    picked = rows[hybrid_selection(vectors[rows], 6, 0, agreement[rows])]
    assert not set(picked.tolist()) & {60, 61}
    assert len(picked) == 6
    # the picks are harder (nearer the boundary, lower agreement) than the class's typical image
    assert np.median(agreement[picked]) < np.median(agreement[:60])

