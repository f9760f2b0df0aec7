"""OOD scores and metrics: exact on hand-made cases, and they separate real digits from real photos."""

from __future__ import annotations

import numpy as np
import pytest

from vision.dependability.ood import FeatureDetector, OodMetrics, logit_scores, ood_metrics, threshold_at_tpr


def test_metrics_on_a_separable_case_are_perfect() -> None:
    assert ood_metrics(np.array([0.1, 0.2, 0.3, 0.4]), np.array([0.5, 0.6])) == OodMetrics(1.0, 0.0, 1.0, 0.0)


def test_metrics_on_an_overlapping_case_are_exact() -> None:
    # pairs (ood > id): 0.3>0.1, 0.5>0.1, 0.5>0.4 of 4 -> AUROC 0.75; 95% of ID accepted needs threshold 0.4,
    # which also accepts the OOD 0.3 -> FPR 0.5; ranking 0.5(ood) 0.4(id) 0.3(ood) 0.1(id) -> AP (1 + 2/3) / 2
    metrics = ood_metrics(np.array([0.1, 0.4]), np.array([0.3, 0.5]))
    assert metrics == OodMetrics(0.75, 0.5, round((1 + 2 / 3) / 2, 6), 0.5)


def test_the_accepted_fraction_is_measured_at_the_serving_threshold_not_the_test_one() -> None:
    # the server's threshold (set on validation) is 0.55: both OOD images are accepted although FPR95 on the
    # test scores is 0.5
    metrics = ood_metrics(np.array([0.1, 0.4]), np.array([0.3, 0.5]), serving_threshold=0.55)
    assert (metrics.fpr_at_95_tpr, metrics.accepted_fraction) == (0.5, 1.0)
    assert not metrics.inverted
    assert ood_metrics(np.array([0.5, 0.6]), np.array([0.1, 0.2])).inverted


def test_threshold_accepts_at_least_the_asked_share() -> None:
    scores = np.arange(100, dtype=float)
    threshold = threshold_at_tpr(scores, 0.95)
    assert threshold == 94.0
    assert np.mean(scores <= threshold) == 0.95


def test_logit_detectors_rank_a_confident_image_as_more_familiar() -> None:
    logits = np.array([[9.0, 0.0, 0.0], [0.4, 0.3, 0.2]])  # confident, then unsure
    for detector in ("msp", "energy", "max_logit"):
        confident, unsure = logit_scores(detector, logits)
        assert confident < unsure, detector
    assert logit_scores("msp", logits)[0] == pytest.approx(-np.exp(9) / (np.exp(9) + 2))
    assert logit_scores("energy", logits)[0] == pytest.approx(-np.log(np.exp(9) + 2))
    with pytest.raises(ValueError, match="unknown logit detector"):
        logit_scores("vibes", logits)


@pytest.mark.parametrize("name", ["mahalanobis", "knn", "vim"])
def test_feature_detectors_flag_points_far_from_the_training_clusters(name: str) -> None:
    rng = np.random.default_rng(0)
    centres = np.array([[5.0, 0, 0, 0], [0, 5.0, 0, 0]])
    labels = rng.integers(0, 2, 400)
    train = centres[labels] + rng.normal(scale=0.3, size=(400, 4))
    near = centres[rng.integers(0, 2, 50)] + rng.normal(scale=0.3, size=(50, 4))
    far = np.array([0, 0, 5.0, 0]) + rng.normal(scale=0.3, size=(50, 4))
    classifier = np.eye(2, 4) if name == "vim" else None  # logits = the first two features
    detector = FeatureDetector(name, k=5, weight=classifier, bias=np.zeros(2) if name == "vim" else None)
    detector.fit(train, labels)
    metrics = ood_metrics(detector.score(near), detector.score(far))
    assert metrics.auroc == 1.0
    assert metrics.fpr_at_95_tpr == 0.0


def test_feature_detectors_must_be_fitted_and_known() -> None:
    with pytest.raises(RuntimeError, match="before fit"):
        FeatureDetector("knn").score(np.zeros((1, 4)))
    with pytest.raises(ValueError, match="unknown feature detector"):
        FeatureDetector("oracle").fit(np.zeros((2, 4)), np.array([0, 1]))
    with pytest.raises(ValueError, match="weight and bias"):
        FeatureDetector("vim").fit(np.zeros((2, 4)), np.array([0, 1]))
