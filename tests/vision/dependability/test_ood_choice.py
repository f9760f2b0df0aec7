"""`detector: auto`: the choice follows what serving does, skips inverted detectors, and sees no gated image."""

from __future__ import annotations

import numpy as np
import pytest

from vision.dependability.head_ood import Outputs, head_detectors
from vision.dependability.ood import OodMetrics
from vision.dependability.ood_assessment import OodAssessment, Populations, assess_detectors
from vision.dependability.ood_choice import choose_detector
from vision.dependability.ood_sets import PHOTOS, SELECTION_PHOTOS, photographs

KINDS = {"photos": "far", "noise": "far", "patches": "near"}


def _metrics(auroc: float, accepted: float) -> OodMetrics:
    return OodMetrics(auroc=auroc, fpr_at_95_tpr=accepted, aupr_out=auroc, accepted_fraction=accepted)


def test_the_detector_accepting_the_fewest_far_images_wins_over_a_higher_auroc() -> None:
    selection = {
        "energy": {"photos": _metrics(0.97, 0.40), "noise": _metrics(0.99, 0.01), "patches": _metrics(0.9, 0.3)},
        "knn": {"photos": _metrics(0.93, 0.08), "noise": _metrics(0.95, 0.02), "patches": _metrics(0.8, 0.4)},
    }
    choice = choose_detector(selection, KINDS)
    assert choice.detector == "knn"
    assert choice.reason.startswith("knn accepts 8.0% of the worst far selection set at its serving threshold")
    assert "next energy accepts 40.0%" in choice.reason
    assert choice.standings["energy"].worst_far_accepted == 0.40


def test_an_inverted_detector_is_not_chosen_while_an_upright_one_exists() -> None:
    selection = {
        "mahalanobis": {"photos": _metrics(0.02, 0.0), "noise": _metrics(0.99, 0.0), "patches": _metrics(0.9, 0.1)},
        "msp": {"photos": _metrics(0.8, 0.5), "noise": _metrics(0.9, 0.3), "patches": _metrics(0.7, 0.6)},
    }
    choice = choose_detector(selection, KINDS)
    assert choice.detector == "msp"
    assert "inverted on a selection set, so not chosen: mahalanobis" in choice.reason


def test_ties_go_to_the_higher_worst_far_auroc_then_the_registry_order() -> None:
    same = {"photos": _metrics(0.99, 0.0), "noise": _metrics(1.0, 0.0), "patches": _metrics(0.9, 0.1)}
    better = {"photos": _metrics(0.999, 0.0), "noise": _metrics(1.0, 0.0), "patches": _metrics(0.9, 0.1)}
    assert choose_detector({"vim": same, "mahalanobis": same}, KINDS).detector == "mahalanobis"
    assert choose_detector({"vim": better, "mahalanobis": same}, KINDS).detector == "vim"


def test_selection_photos_are_held_out_of_the_gate_pool() -> None:
    assert set(SELECTION_PHOTOS) < set(PHOTOS)
    gate = {p.tobytes()[:4096] for p in photographs("gate")}
    selection = {p.tobytes()[:4096] for p in photographs("selection")}
    assert len(selection) == len(SELECTION_PHOTOS)
    assert not gate & selection
    with pytest.raises(ValueError, match="unknown photo pool"):
        photographs("test")


def _clusters(rng: np.random.Generator, count: int, centre: np.ndarray) -> Outputs:
    features = centre + rng.normal(scale=0.4, size=(count, centre.shape[-1]))
    return Outputs(logits=features[:, :3] * 2.0, features=features)


# Nine parameters: each population's outputs, the head, the spec's choice and the selection sets with kinds.
def _assess(train: Outputs, labels: np.ndarray, val: Outputs, test: Outputs, sets: dict[str, Outputs],
            head: tuple[np.ndarray, np.ndarray], chosen: str, selection: dict[str, Outputs],
            kinds: dict[str, str]) -> OodAssessment:
    """What the classifier's stage does with its outputs: every head detector, thresholded and measured."""
    seen = Populations(val, test, sets, {**dict.fromkeys(sets, "far"), **kinds}, selection)
    return assess_detectors(head_detectors(train, labels, head), seen, chosen)


def test_the_choice_does_not_depend_on_the_gated_sets() -> None:
    rng = np.random.default_rng(0)
    centres = np.eye(3, 6) * 4.0
    labels = rng.integers(0, 3, 300)
    train = Outputs(*(lambda f: (f[:, :3] * 2.0, f))(centres[labels] + rng.normal(scale=0.4, size=(300, 6))))
    val = _clusters(rng, 60, centres[rng.integers(0, 3, 60)])
    test = _clusters(rng, 60, centres[rng.integers(0, 3, 60)])
    selection = {"selection_photos": _clusters(rng, 80, np.array([0, 0, 0, 4.0, 0, 0])),
                 "selection_noise": _clusters(rng, 80, np.array([0, 0, 0, 0, 4.0, 0]))}
    kinds = {"selection_photos": "far", "selection_noise": "far"}
    classifier = (np.eye(3, 6) * 2.0, np.zeros(3))
    easy = {"photos": _clusters(rng, 80, np.array([0, 0, 0, 0, 0, 9.0]))}
    hard = {"photos": _clusters(rng, 80, centres[rng.integers(0, 3, 80)])}  # looks exactly like the test split
    first = _assess(train, labels, val, test, easy, classifier, "auto", selection, kinds)
    second = _assess(train, labels, val, test, hard, classifier, "auto", selection, kinds)
    assert first.choice is not None
    assert second.choice is not None
    assert first.detector == second.detector
    assert first.choice.as_dict() == second.choice.as_dict()
    assert first.table != second.table  # the gated figures did change
    assert first.threshold == second.threshold
    named = _assess(train, labels, val, test, easy, classifier, "energy", {}, {})
    assert named.choice is None
    assert named.detector == "energy"
