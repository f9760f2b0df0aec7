"""Class balance: the sampler draws every class about equally, the loss weights are the inverse shares."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import TensorDataset

from core.spec.training import TrainSection
from vision.tasks.classification import TASK, class_weights
from vision.training.loaders import training_loader


def _labels() -> np.ndarray:
    return np.array([0] * 900 + [1] * 90 + [2] * 10)  # 90% / 9% / 1%


def _drawn(balance: str, seed: int = 0) -> np.ndarray:
    labels = _labels()
    dataset = TensorDataset(torch.zeros(len(labels), 1), torch.from_numpy(labels))
    loader = training_loader(dataset, labels, TrainSection(batch_size=50, balance=balance),
                             torch.Generator().manual_seed(seed))
    return torch.cat([y for _, y in loader]).numpy()


def test_the_balanced_sampler_draws_every_class_about_equally_and_repeatably() -> None:
    drawn = _drawn("sampler")
    assert len(drawn) == 1000  # an epoch is still one pass's worth of images
    shares = np.bincount(drawn, minlength=3) / len(drawn)
    assert shares == pytest.approx([1 / 3] * 3, abs=0.05)
    assert np.array_equal(drawn, _drawn("sampler"))  # seeded
    assert not np.array_equal(drawn, _drawn("sampler", seed=1))


def test_without_balance_an_epoch_is_each_image_once() -> None:
    assert np.array_equal(np.sort(_drawn("none")), _labels())
    assert np.array_equal(np.sort(_drawn("loss")), _labels())  # loss weighting leaves the sampling alone


def test_class_weights_are_inverse_shares_averaging_one_per_image() -> None:
    weights = class_weights(_labels(), 4).numpy()
    assert weights[3] == 0.0  # no image of class 3
    assert weights[:3] == pytest.approx([1000 / (3 * 900), 1000 / (3 * 90), 1000 / (3 * 10)])
    per_image = weights[_labels()]
    assert per_image.mean() == pytest.approx(1.0)


def test_the_weighted_loss_counts_a_rare_class_mistake_more() -> None:
    # a common-class image answered right and a rare-class image answered wrong
    logits = torch.tensor([[3.0, 0.0, 0.0], [3.0, 0.0, 0.0]])
    labels = torch.tensor([0, 2])
    weights = torch.tensor([0.4, 1.0, 10.0])
    each = torch.nn.functional.cross_entropy(logits, labels, reduction="none")
    plain, weighted = TASK.loss(logits, labels, 0.0, None), TASK.loss(logits, labels, 0.0, weights)
    assert float(plain) == pytest.approx(float(each.mean()))
    assert float(weighted) == pytest.approx(float((0.4 * each[0] + 10.0 * each[1]) / 10.4))
    assert float(weighted) > float(plain)
