"""A cascade's round: an image is as uncertain as its most doubtful part, a box the detector hesitates on or a sure
box whose fine class the classifier hesitates on, and only the strategies that rank by one figure are offered."""

from __future__ import annotations

import numpy as np
import pytest

from vision.loop.choose import Choice, cascade_round
from vision.loop.uncertainty import fine_class_uncertainty

LOW = (0.1, 0.5)


def test_a_sure_box_of_an_unsure_class_and_an_unsure_box_both_rank_above_a_sure_answer() -> None:
    boxes = [np.array([0.97, 0.02]),   # sure box, sure class
             np.array([0.96]),         # sure box, the classifier torn between two digits
             np.array([0.45, 0.01]),   # the detector cannot decide
             np.array([])]             # nothing found
    fine = [np.array([0.99]), np.array([0.5]), np.array([]), np.array([])]
    embeddings = np.eye(4, dtype=np.float32)
    chosen = cascade_round(Choice("least_confidence", 2, 0), boxes, fine, 10, embeddings, np.zeros((0, 4)), LOW)
    assert sorted(chosen.queue.tolist()) == [1, 2]
    assert chosen.figures["box"][2] == pytest.approx(0.9)
    assert chosen.figures["fine_class"][1] == pytest.approx(0.5 * 10 / 9)
    assert chosen.figures["cascade"][0] < 0.1
    assert chosen.figures["cascade"][3] == 0.0
    assert chosen.figures["low_confidence_boxes"].tolist() == [0, 0, 1, 0]
    assert chosen.figures["answered_boxes"].tolist() == [1, 1, 0, 0]
    np.testing.assert_array_equal(chosen.uncertainty, chosen.figures["cascade"])


def test_a_uniform_fine_answer_is_as_uncertain_as_a_coin_flip_box() -> None:
    assert fine_class_uncertainty(np.array([0.1]), 10) == pytest.approx(1.0)
    assert fine_class_uncertainty(np.array([1.0, 0.7]), 10) == pytest.approx(0.3 * 10 / 9)
    assert fine_class_uncertainty(np.array([]), 10) == 0.0
    with pytest.raises(ValueError, match="at least two classes"):
        fine_class_uncertainty(np.array([0.5]), 1)


@pytest.mark.parametrize("strategy", ["margin", "entropy", "bald", "ensemble", "badge"])
def test_strategies_needing_other_figures_are_refused(strategy: str) -> None:
    with pytest.raises(ValueError, match="ranks by one figure"):
        cascade_round(Choice(strategy, 1, 0), [np.array([0.5])], [np.array([0.9])], 3, np.eye(1), np.zeros((0, 1)),
                      LOW)


def test_hybrid_spreads_the_queue_over_the_most_uncertain() -> None:
    rng = np.random.default_rng(0)
    boxes = [np.array([s]) for s in rng.uniform(0.5, 1.0, 40)]
    fine = [np.array([p]) for p in rng.uniform(0.2, 1.0, 40)]
    embeddings = rng.normal(size=(40, 8)).astype(np.float32)
    chosen = cascade_round(Choice("hybrid", 5, 0, 2.0), boxes, fine, 10, embeddings, np.zeros((0, 8)), LOW)
    assert len(set(chosen.queue.tolist())) == 5
    top = set(np.argsort(-chosen.figures["cascade"], kind="stable")[:10].tolist())
    assert set(chosen.queue.tolist()) <= top
