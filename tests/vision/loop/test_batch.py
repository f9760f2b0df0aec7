"""Batch selection on hand-made embeddings: k-center covers, the hybrid is uncertain and diverse, BADGE
spreads over gradients."""

from __future__ import annotations

import numpy as np

from vision.loop.batch import badge, coreset, hybrid, random_batch, top_k


def unit(*rows: list[float]) -> np.ndarray:
    v = np.array(rows, np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


# two tight clusters (around x and around y) and one lone point (z)
POOL = unit([1, 0.01, 0], [1, 0.02, 0], [1, 0.03, 0], [0.01, 1, 0], [0.02, 1, 0], [0, 0, 1])


def test_top_k_is_highest_first_with_ties_in_pool_order() -> None:
    assert top_k(np.array([0.1, 0.9, 0.5, 0.9]), 3).tolist() == [1, 3, 2]
    assert top_k(np.array([0.1]), 5).tolist() == [0]


def test_kcenter_takes_one_image_per_cluster_before_a_second_from_any() -> None:
    chosen = coreset(POOL, 3)
    assert sorted(chosen.tolist())[-1] == 5  # the lone point is always taken
    groups = {0: "x", 1: "x", 2: "x", 3: "y", 4: "y", 5: "z"}
    assert {groups[i] for i in chosen.tolist()} == {"x", "y", "z"}


def test_kcenter_skips_what_the_labelled_set_already_covers() -> None:
    covered = unit([1, 0.015, 0], [0, 0, 1])  # x and z are labelled already
    chosen = coreset(POOL, 1, covered)
    assert chosen.tolist()[0] in (3, 4)


def test_hybrid_is_uncertain_first_then_diverse() -> None:
    # the three x images are the most uncertain, then y, then z; a pure top-2 would take two x images
    uncertainty = np.array([0.9, 0.95, 0.92, 0.8, 0.7, 0.1])
    assert sorted(top_k(uncertainty, 2).tolist()) == [1, 2]
    chosen = hybrid(uncertainty, POOL, k=2, pool_factor=2.0)  # shortlist 1, 2, 0, 3
    groups = {0: "x", 1: "x", 2: "x", 3: "y", 4: "y", 5: "z"}
    assert {groups[i] for i in chosen.tolist()} == {"x", "y"}
    assert 5 not in hybrid(uncertainty, POOL, k=3, pool_factor=1.0)  # z is never uncertain enough


def test_badge_starts_at_the_largest_gradient_and_spreads() -> None:
    probabilities = np.array([[0.99, 0.01], [0.98, 0.02], [0.5, 0.5], [0.51, 0.49], [0.6, 0.4]])
    features = np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    chosen = badge(probabilities, features, 2, seed=0)
    assert chosen[0] in (2, 3)  # the most uncertain image has the largest gradient
    assert len(set(chosen.tolist())) == 2
    # seeded: the same answer every time
    assert badge(probabilities, features, 3, seed=1).tolist() == badge(probabilities, features, 3, seed=1).tolist()


def test_badge_never_repeats_and_handles_duplicates() -> None:
    probabilities = np.tile([[0.5, 0.5]], (4, 1))
    features = np.ones((4, 3))
    chosen = badge(probabilities, features, 4, seed=0)
    assert sorted(chosen.tolist()) == [0, 1, 2, 3]


def test_random_batch_is_seeded() -> None:
    assert random_batch(10, 4, 3).tolist() == random_batch(10, 4, 3).tolist()
    assert len(set(random_batch(10, 20, 0).tolist())) == 10
