"""Out-of-distribution scores at serving time, in numpy, from the state the dependability stage saved.

The dependability stage fits the detectors with pytorch-ood (and faiss) and
saves their fitted arrays; these functions evaluate the same formulas without
torch, so the predictor image stays small. Tests check they give the offline
scores to float precision. Higher always means more likely out of distribution.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np


def _logsumexp(x: np.ndarray) -> np.ndarray:
    top = x.max(axis=1, keepdims=True)
    return (top + np.log(np.exp(x - top).sum(axis=1, keepdims=True)))[:, 0]


def softmax(x: np.ndarray) -> np.ndarray:
    shifted = np.exp(x - x.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def mahalanobis_terms(state: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The class-only parts of the Mahalanobis distance: P mu (features x classes) and mu'P mu per class."""
    mu, precision = np.asarray(state["mu"], np.float64), np.asarray(state["precision"], np.float64)
    precision_mu = precision @ mu.T
    return {"precision": precision, "precision_mu": precision_mu,
            "mu_precision_mu": (mu * precision_mu.T).sum(axis=1)}


def ensemble_score(logits: np.ndarray, member_logits: np.ndarray) -> np.ndarray:
    """Disagreement of the deployable model and the ensemble's members (M x N x C logits): the mutual information
    H[mean softmax] - mean H[softmax], high where each is sure and they disagree (Lakshminarayanan et al. 2017)."""
    return mutual_information(softmax_stack(np.concatenate([np.asarray(logits, np.float64)[None],
                                                            np.asarray(member_logits, np.float64)])))


def mutual_information(samples: np.ndarray) -> np.ndarray:
    """H[mean of T probability samples] - mean of H[each] for T x N x C samples: BALD's formula, shared by the
    server's ensemble score and the data loop's uncertainty scores (vision.loop.uncertainty)."""
    s = np.asarray(samples, np.float64)
    mean = s.mean(axis=0)
    total = -(mean * np.log(mean + 1e-12)).sum(axis=1)
    expected = -(s * np.log(s + 1e-12)).sum(axis=2).mean(axis=0)
    return np.maximum(total - expected, 0.0)


def softmax_stack(x: np.ndarray) -> np.ndarray:
    """Softmax over the last axis of any stack of logit matrices."""
    shifted = np.exp(x - x.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def ood_score(detector: str, logits: np.ndarray, features: np.ndarray,
              state: Mapping[str, np.ndarray], member_logits: np.ndarray | None = None) -> np.ndarray:
    """The `detector`'s score per image; `state` holds what the fitted detector needs (empty for logit ones);
    `member_logits` the ensemble members' logits for the `ensemble` detector."""
    if detector == "ensemble":
        if member_logits is None:
            raise ValueError("the ensemble detector needs the members' logits")
        return ensemble_score(logits, member_logits)
    z = np.asarray(logits, np.float64)
    if detector == "msp":
        return -softmax(z).max(axis=1)
    if detector == "energy":
        return -_logsumexp(z)
    if detector == "max_logit":
        return -z.max(axis=1)
    f = np.asarray(features, np.float64)
    if detector == "mahalanobis":
        # (f - mu_c)' P (f - mu_c) = f'Pf - 2 f'(P mu_c) + mu_c'P mu_c: with P mu and mu'P mu computed once
        # (mahalanobis_terms), a request costs one features x features product instead of one per class.
        terms = state if "precision_mu" in state else mahalanobis_terms(state)
        distances = (((f @ terms["precision"]) * f).sum(axis=1, keepdims=True) - 2.0 * (f @ terms["precision_mu"])
                     + terms["mu_precision_mu"][None, :])
        return 0.5 * distances.min(axis=1)
    if detector == "vim":
        residual = np.linalg.norm((f - state["u"]) @ state["principal_subspace"], axis=1) * float(state["alpha"])
        return residual - _logsumexp(f @ state["w"].T + state["b"])
    if detector == "knn":
        unit = f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)
        similarity = unit @ state["bank"].T
        k = int(state["k"])
        return -np.sort(similarity, axis=1)[:, -k]
    raise ValueError(f"unknown OOD detector '{detector}'")
