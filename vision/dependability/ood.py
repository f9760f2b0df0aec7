"""Out-of-distribution scores and their metrics: when the model does not know.

Every score follows pytorch-ood's convention: higher means more likely out of
distribution. Logit detectors (MSP, energy, max-logit) need only the deployed
model's logits; feature detectors (Mahalanobis, KNN) are fitted on training
features (ViM also on the classifier's weights). pytorch-ood provides the detectors; KNN is done here with faiss
because pytorch-ood's uses scikit-learn's exact neighbour search, which does not
scale to large training sets.
"""

from __future__ import annotations

from dataclasses import dataclass

import faiss
import numpy as np
import torch
from pytorch_ood.detector import EnergyBased, Mahalanobis, MaxLogit, MaxSoftmax, ViM
from sklearn.metrics import average_precision_score, roc_auc_score

LOGIT_DETECTORS = ("msp", "energy", "max_logit")
FEATURE_DETECTORS = ("mahalanobis", "knn", "vim")
DETECTORS = LOGIT_DETECTORS + FEATURE_DETECTORS


def logit_scores(detector: str, logits: np.ndarray) -> np.ndarray:
    """Outlier score per image from its logits."""
    x = torch.from_numpy(np.asarray(logits, dtype=np.float32))
    if detector == "msp":
        scores = MaxSoftmax.score(x)
    elif detector == "energy":
        scores = EnergyBased.score(x)
    elif detector == "max_logit":
        scores = MaxLogit.score(x)
    else:
        raise ValueError(f"unknown logit detector '{detector}' (one of {', '.join(LOGIT_DETECTORS)})")
    return scores.numpy().astype(np.float64)


@dataclass
class FeatureDetector:
    """Mahalanobis (class means, shared covariance), KNN (k-th nearest training neighbour, cosine) or ViM
    (energy plus the feature's norm outside the training features' principal subspace; needs the classifier's
    `weight` and `bias`)."""

    name: str
    k: int = 50
    weight: np.ndarray | None = None
    bias: np.ndarray | None = None
    _fitted: Mahalanobis | ViM | None = None
    _index: faiss.Index | None = None
    _bank: np.ndarray | None = None

    def fit(self, features: np.ndarray, labels: np.ndarray) -> FeatureDetector:
        z = np.ascontiguousarray(features, dtype=np.float32)
        if self.name == "mahalanobis":
            self._fitted = Mahalanobis(None).fit_features(torch.from_numpy(z), torch.from_numpy(labels))
        elif self.name == "vim":
            if self.weight is None or self.bias is None:
                raise ValueError("the vim detector needs the classifier's weight and bias")
            classes, dims = self.weight.shape
            subspace = min(dims - 1, max(classes, dims // 4))  # principal dims kept; the rest is "virtual logit"
            self._fitted = ViM(None, subspace, torch.from_numpy(np.asarray(self.weight, np.float32)),
                               torch.from_numpy(np.asarray(self.bias, np.float32)))
            self._fitted.fit_features(torch.from_numpy(z), torch.from_numpy(labels))
        elif self.name == "knn":
            self._index = faiss.IndexFlatIP(z.shape[1])
            self._bank = _unit(z)
            self._index.add(self._bank)
            self.k = min(self.k, len(z))
        else:
            raise ValueError(f"unknown feature detector '{self.name}' (one of {', '.join(FEATURE_DETECTORS)})")
        return self

    def score(self, features: np.ndarray) -> np.ndarray:
        z = np.ascontiguousarray(features, dtype=np.float32)
        if self._fitted is not None:
            return self._fitted.predict_features(torch.from_numpy(z)).numpy().astype(np.float64)
        if self._index is None:
            raise RuntimeError(f"{self.name} detector used before fit()")
        similarity, _ = self._index.search(_unit(z), self.k)
        return -similarity[:, -1].astype(np.float64)  # far from its k-th neighbour = unfamiliar


    def state(self) -> dict[str, np.ndarray]:
        """The fitted arrays the model server scores with (runtime/ood.py evaluates the same formulas)."""
        if isinstance(self._fitted, Mahalanobis):
            return {"mu": self._fitted.mu.numpy(), "precision": self._fitted.precision.numpy()}
        if isinstance(self._fitted, ViM):
            return {"u": self._fitted.u.numpy(), "principal_subspace": self._fitted.principal_subspace.numpy(),
                    "alpha": np.asarray(self._fitted.alpha), "w": self._fitted.w.numpy(), "b": self._fitted.b.numpy()}
        if self._bank is not None:
            return {"bank": self._bank, "k": np.asarray(self.k)}
        raise RuntimeError(f"{self.name} detector used before fit()")


def _unit(z: np.ndarray) -> np.ndarray:
    return z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)


@dataclass(frozen=True)
class OodMetrics:
    auroc: float
    """Probability that an OOD image scores higher than an in-distribution one (below 0.5: inverted)."""
    fpr_at_95_tpr: float
    """Share of OOD images accepted when 95% of the scored in-distribution images are accepted."""
    aupr_out: float
    """Average precision with OOD as the positive class."""
    accepted_fraction: float
    """Share of OOD images the server accepts (score <= its threshold, set on validation images): what
    serving does, as opposed to the ranking quality AUROC measures."""

    @property
    def inverted(self) -> bool:
        """The detector ranks these images as more familiar than in-distribution ones."""
        return self.auroc < 0.5


def threshold_at_tpr(id_scores: np.ndarray, tpr: float = 0.95) -> float:
    """The largest score that still accepts (score <= threshold) at least `tpr` of in-distribution images."""
    ordered = np.sort(np.asarray(id_scores, dtype=np.float64))
    return float(ordered[int(np.ceil(tpr * len(ordered))) - 1])


def accepted_fraction(scores: np.ndarray, threshold: float) -> float:
    """Share of images a server with this threshold answers instead of abstaining on (score <= threshold)."""
    return round(float(np.mean(np.asarray(scores, dtype=np.float64) <= threshold)), 6)


def ood_metrics(id_scores: np.ndarray, ood_scores: np.ndarray, tpr: float = 0.95,
                serving_threshold: float | None = None) -> OodMetrics:
    """AUROC, FPR at 95% TPR and AUPR-out (scikit-learn does the ranking arithmetic), and the share accepted at
    `serving_threshold` (default: the threshold at `tpr` of `id_scores`, so it equals the FPR)."""
    scores = np.concatenate([id_scores, ood_scores])
    is_ood = np.concatenate([np.zeros(len(id_scores)), np.ones(len(ood_scores))])
    threshold = threshold_at_tpr(id_scores, tpr)
    return OodMetrics(auroc=round(float(roc_auc_score(is_ood, scores)), 6),
                      fpr_at_95_tpr=accepted_fraction(ood_scores, threshold),
                      aupr_out=round(float(average_precision_score(is_ood, scores)), 6),
                      accepted_fraction=accepted_fraction(
                          ood_scores, threshold if serving_threshold is None else serving_threshold))
