"""Each uncertainty score against a hand computation on hand-made probabilities."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vision.loop.uncertainty import (
    box_uncertainty,
    ensemble_box_disagreement,
    ensemble_disagreement,
    entropy,
    least_confidence,
    margin,
    mutual_information,
)

P = np.array([[0.7, 0.2, 0.1],
              [1 / 3, 1 / 3, 1 / 3],
              [1.0, 0.0, 0.0],
              [0.45, 0.45, 0.1]])


def test_least_confidence_is_one_minus_the_top_probability() -> None:
    assert least_confidence(P) == pytest.approx([0.3, 2 / 3, 0.0, 0.55])


def test_margin_is_one_minus_the_gap_between_the_two_best() -> None:
    assert margin(P) == pytest.approx([1 - 0.5, 1.0, 0.0, 1.0])


def test_entropy_in_nats() -> None:
    first = -(0.7 * math.log(0.7) + 0.2 * math.log(0.2) + 0.1 * math.log(0.1))
    assert entropy(P) == pytest.approx([first, math.log(3), 0.0, -(2 * 0.45 * math.log(0.45) + 0.1 * math.log(0.1))],
                                       abs=1e-9)


def test_uncertainty_ranks_the_uniform_answer_above_the_sure_one() -> None:
    for score in (least_confidence, margin, entropy):
        values = score(P)
        assert values[1] > values[0] > values[2]


def test_bald_on_a_hand_made_mc_sample() -> None:
    # image 0: two confident passes that disagree -> H(mean) = log 2, mean H = 0 -> BALD = log 2
    # image 1: two identical uncertain passes -> BALD = 0 (ambiguity, not model uncertainty)
    samples = np.array([[[1.0, 0.0], [0.5, 0.5]],
                        [[0.0, 1.0], [0.5, 0.5]]])
    assert mutual_information(samples) == pytest.approx([math.log(2), 0.0], abs=1e-9)
    # a mixed case by hand: passes (0.9, 0.1) and (0.5, 0.5): mean (0.7, 0.3)
    mixed = np.array([[[0.9, 0.1]], [[0.5, 0.5]]])
    h = lambda p: -sum(x * math.log(x) for x in p)  # noqa: E731
    assert mutual_information(mixed)[0] == pytest.approx(h([0.7, 0.3]) - (h([0.9, 0.1]) + h([0.5, 0.5])) / 2)
    assert ensemble_disagreement(mixed) == pytest.approx(mutual_information(mixed))


def test_scores_refuse_malformed_input() -> None:
    with pytest.raises(ValueError, match="N x C"):
        entropy(np.array([0.5, 0.5]))
    with pytest.raises(ValueError, match="T >= 2"):
        mutual_information(P[None])


def test_box_uncertainty_aggregates_by_hand() -> None:
    found = box_uncertainty(np.array([0.9, 0.5, 0.2]), (0.1, 0.5))
    h = lambda s: -(s * math.log(s) + (1 - s) * math.log(1 - s))  # noqa: E731
    assert found.mean_entropy == pytest.approx((h(0.9) + h(0.5) + h(0.2)) / 3)
    assert found.max_entropy == pytest.approx(math.log(2))
    assert found.low_confidence_boxes == 1  # 0.2 is in [0.1, 0.5); 0.5 is not
    assert found.detections == 3
    assert box_uncertainty(np.zeros(0), (0.1, 0.5)).score == 0.0


def test_ensemble_box_disagreement() -> None:
    box = np.array([[10, 10, 50, 50]], float)
    same = (box, np.array([1]))
    assert ensemble_box_disagreement([same, same, same]) == 0.0
    other_class = (box, np.array([2]))
    assert ensemble_box_disagreement([same, other_class]) == 1.0
    nothing = (np.zeros((0, 4)), np.zeros(0, int))
    assert ensemble_box_disagreement([nothing, nothing]) == 0.0
    # members 1 and 2 agree, 3 found nothing: pair F1s 1, 0, 0 -> disagreement 2/3
    assert ensemble_box_disagreement([same, same, nothing]) == pytest.approx(2 / 3)
    shifted = (box + np.array([[20, 0, 20, 0]]), np.array([1]))  # IoU 20*40 / (2*1600 - 800) = 1/3 < 0.5
    assert ensemble_box_disagreement([same, shifted]) == 1.0


def test_the_server_s_ensemble_score_is_the_loop_s_mutual_information() -> None:
    """The `ensemble` OOD detector (runtime.ood, what the server computes per request) and the select stage's
    ensemble disagreement are one formula."""
    from runtime.ood import ensemble_score, softmax_stack

    rng = np.random.default_rng(0)
    logits, members = rng.normal(size=(5, 3)) * 3, rng.normal(size=(2, 5, 3)) * 3
    stacked = softmax_stack(np.concatenate([logits[None], members]))
    assert ensemble_score(logits, members) == pytest.approx(ensemble_disagreement(stacked), abs=1e-9)
    same = np.stack([logits, logits])
    assert ensemble_score(logits, same) == pytest.approx(np.zeros(5), abs=1e-9)
