"""Robustness sweep: exact bookkeeping on a hand-made classifier, seen and held-out corruptions kept apart."""

from __future__ import annotations

import numpy as np
import pytest

from vision.data.streams import Images, batches
from vision.dependability.robustness import CorruptionResult, corrupted, robustness, summary


def _bright_or_dark(images: Images) -> np.ndarray:
    """A 'model' that calls an image class 1 when it is bright: low light should fool it, rotation should not.
    It reads the images a batch at a time, as the deployed model's session does."""
    return np.concatenate([(chunk.reshape(len(chunk), -1).mean(axis=1) > 100).astype(int)
                           for chunk in batches(images, 3)])


@pytest.fixture
def images() -> tuple[np.ndarray, np.ndarray]:
    bright, dark = np.full((4, 32, 32, 3), 200, np.uint8), np.full((4, 32, 32, 3), 20, np.uint8)
    return np.concatenate([bright, dark]), np.array([1] * 4 + [0] * 4)


def test_sweep_measures_each_corruption_and_severity(images) -> None:
    x, y = images
    clean, results = robustness(_bright_or_dark, x, y, ["low_light", "rotation"], [1, 5], {"low_light"}, seed=0)
    assert clean == 1.0
    assert [(r.corruption, r.severity) for r in results] == [("low_light", 1), ("low_light", 5), ("rotation", 1),
                                                             ("rotation", 5)]
    by_key = {(r.corruption, r.severity): r for r in results}
    assert by_key[("low_light", 5)].accuracy < 1.0  # darkening turns bright images "dark"
    assert by_key[("low_light", 5)].seen_in_training
    assert not by_key[("rotation", 1)].seen_in_training
    # severe darkening makes every image "dark": the model has collapsed to class 0, its accuracy (0.5) is the
    # prior of that class, and the result says so
    assert (by_key[("low_light", 5)].top_class, by_key[("low_light", 5)].top_share) == (0, 1.0)
    assert by_key[("low_light", 5)].accuracy == 0.5
    assert by_key[("low_light", 5)].collapsed
    assert not by_key[("rotation", 1)].collapsed  # half bright, half dark: both classes still answered


def test_summary_keeps_held_out_and_seen_apart() -> None:
    results = [CorruptionResult("fog", 1, 0.8, True), CorruptionResult("fog", 2, 0.6, True),
               CorruptionResult("elastic", 1, 0.9, False)]
    assert summary(1.0, results) == {
        "clean_accuracy": 1.0, "mean_ratio": round((0.8 + 0.6 + 0.9) / 3, 6), "held_out_mean_ratio": 0.9,
        "seen_mean_ratio": 0.7, "held_out": ["elastic"],
        "worst": {"corruption": "fog", "severity": 2, "accuracy": 0.6}}


def test_corrupted_images_repeat_with_the_seed(images) -> None:
    x, _ = images
    assert np.array_equal(corrupted(x, "occlusion", 3, seed=1), corrupted(x, "occlusion", 3, seed=1))


def test_figure_robustness_reads_every_task_s_figure_alike() -> None:
    """One aggregation for every task: per family the mean of the task's figure and its drop, the families
    training never saw and their mean, the worst condition, named by the figure."""
    from vision.dependability.robustness import CorruptionResult, figure_robustness

    results = [CorruptionResult("fog", 1, 0.8, True), CorruptionResult("fog", 2, 0.6, True),
               CorruptionResult("gaussian_noise", 1, 0.5, False), CorruptionResult("gaussian_noise", 2, 0.3, False)]
    figures = figure_robustness(0.9, results, "map")
    assert figures["clean_map"] == 0.9
    assert figures["families"] == {"fog": {"mean_map": 0.7, "drop": 0.2, "seen_in_training": True},
                                   "gaussian_noise": {"mean_map": 0.4, "drop": 0.5, "seen_in_training": False}}
    assert figures["held_out"] == ["gaussian_noise"]
    assert figures["held_out_mean_map"] == 0.4
    assert figures["worst"] == {"corruption": "gaussian_noise", "severity": 2, "map": 0.3}
    assert figure_robustness(0.9, [], "map")["worst"] is None
