"""The model server's numpy OOD scores equal the dependability stage's pytorch-ood / faiss ones."""

from __future__ import annotations

import numpy as np
import pytest

from runtime.ood import ood_score
from vision.dependability.ood import DETECTORS, LOGIT_DETECTORS, FeatureDetector, logit_scores


@pytest.mark.parametrize("detector", DETECTORS)
def test_serving_scores_match_the_offline_detector(detector: str) -> None:
    rng = np.random.default_rng(0)
    weight, bias = rng.normal(size=(4, 16)), rng.normal(size=4)
    labels = rng.integers(0, 4, 300)
    train = rng.normal(size=(300, 16)) + 3 * np.eye(4, 16)[labels]
    features = np.concatenate([rng.normal(size=(20, 16)) + 3 * np.eye(4, 16)[rng.integers(0, 4, 20)],
                               rng.normal(scale=4, size=(20, 16))]).astype(np.float32)
    logits = (features @ weight.T + bias).astype(np.float32)
    if detector in LOGIT_DETECTORS:
        expected, state = logit_scores(detector, logits), {}
    else:
        fitted = FeatureDetector(detector, k=10, weight=weight, bias=bias).fit(train.astype(np.float32), labels)
        expected, state = fitted.score(features), fitted.state()
    np.testing.assert_allclose(ood_score(detector, logits, features, state), expected, rtol=1e-4, atol=1e-4)


def test_an_unknown_detector_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown OOD detector"):
        ood_score("oracle", np.zeros((1, 2)), np.zeros((1, 2)), {})
