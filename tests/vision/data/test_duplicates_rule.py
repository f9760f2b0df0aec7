"""The duplicate rule: calibrated on the data, kept clear of float noise, exact on snapped vectors."""

from __future__ import annotations

import numpy as np

from vision.data.duplicates import calibrate, settle
from vision.data.neighbours import NOISE_MARGIN, nearest_other, stable_cut
from vision.data.vectors import GRID, similarity, snap


def test_snapped_similarities_are_exact_in_any_summation_order() -> None:
    vectors = snap(np.random.default_rng(0).normal(size=(50, 1280)) / np.sqrt(1280))
    assert np.all(vectors == snap(vectors))
    forward = similarity(vectors, vectors)
    backward = similarity(vectors[:, ::-1], vectors[:, ::-1])  # another order of the same sums
    assert np.array_equal(forward, backward)
    assert np.all(np.abs(vectors / GRID - np.round(vectors / GRID)) == 0)


def test_a_cut_moves_up_past_any_value_within_the_margin() -> None:
    assert stable_cut(np.array([0.5, 0.9]), 0.97) == 0.97
    values = np.array([0.96995, 0.97004, 0.97011, 0.99])
    cut = stable_cut(values, 0.97)
    assert cut >= 0.97
    assert np.all(np.abs(values - cut) >= NOISE_MARGIN - 1e-12)
    assert [v >= cut for v in values] == [False, False, False, True]
    # noise of 1e-6 on every value moves no value across the cut
    noisy = values + np.array([1e-6, -1e-6, 1e-6, -1e-6])
    assert [v >= stable_cut(noisy, 0.97) for v in noisy] == [False, False, False, True]


def test_copies_above_the_neighbours_fence_set_the_threshold() -> None:
    rng = np.random.default_rng(0)
    neighbours = np.concatenate([rng.uniform(0.80, 0.90, 95), [0.999] * 5])  # 5% with a real duplicate
    copies = {"reencoded": rng.uniform(0.97, 0.995, 64), "cropped": rng.uniform(0.85, 0.95, 64)}
    calibration = calibrate(copies, neighbours)
    assert calibration.separable == {"reencoded": True, "cropped": False}
    assert calibration.rule.mode == "auto"
    assert 0.97 <= calibration.rule.threshold <= 0.975
    assert "cropped copies cannot be told from neighbours" in calibration.rule.reason


def test_when_copies_overlap_the_neighbours_only_identical_embeddings_are_duplicates() -> None:
    rng = np.random.default_rng(1)
    calibration = calibrate({"reencoded": rng.uniform(0.97, 0.995, 64)}, rng.uniform(0.975, 0.993, 200))
    assert calibration.rule.mode == "auto-exact"
    assert calibration.rule.threshold is None
    vectors = snap(np.concatenate([np.eye(4, 16), np.eye(4, 16)[:1], [np.eye(4, 16)[1] * 0.9999]]))
    _rule, pairs = settle(calibration.rule, vectors)
    assert [(i, j) for i, j, _ in pairs] == [(0, 4)]  # row 5 is near row 1 but not identical


def test_nearest_other_skips_rows_with_the_same_content() -> None:
    vectors = snap(np.array([[1.0, 0, 0], [1.0, 0, 0], [0.8, 0.6, 0], [0, 0, 1.0]]))
    found = nearest_other(vectors, np.array(["a", "a", "b", "c"]))
    assert np.allclose(found, [0.8, 0.8, 0.8, 0.0], atol=1e-4)
