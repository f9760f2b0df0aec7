"""Frozen levels split off and run once per image: the split model computes what the whole one does, training
on stored activations matches training through the frozen levels, and the model comes back whole."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from core.spec.training import AugmentSection, TrainSection
from tests.conftest import TINY_CLASSES, tiny_split_data
from vision.data.dataset import to_tensor
from vision.training.fit import fit
from vision.training.freeze import freeze_levels
from vision.training.frozen_prefix import put_back, split_off
from vision.training.model import ModelConfig, build_model

SIZE = 16
CONFIG = ModelConfig("resnet10t", TINY_CLASSES, SIZE)


@pytest.fixture(scope="module")
def splits(tiny_digits: Path):
    return tiny_split_data(tiny_digits, SIZE, ("train", "val"))


def test_the_split_model_on_the_prefix_computes_what_the_whole_model_does(splits) -> None:
    train, _ = splits
    torch.manual_seed(0)
    model = build_model(CONFIG).eval()
    names = freeze_levels(model, 3)
    x = to_tensor(train.images[:6])
    with torch.no_grad():
        expected = model(x)
    keys = list(model.state_dict())
    prefix = split_off(model, names, train.images[:4])
    assert prefix is not None
    assert isinstance(model.layer1, torch.nn.Identity)
    assert not isinstance(model.layer3, torch.nn.Identity)
    with torch.no_grad():
        assert torch.allclose(model(prefix(x)), expected, atol=1e-5)
    put_back(model, names, prefix)
    assert list(model.state_dict()) == keys
    with torch.no_grad():
        assert torch.equal(model(x), expected)


class _Skip(torch.nn.Module):
    """A network whose input also reaches its output past the first module: not a plain sequence."""

    def __init__(self) -> None:
        super().__init__()
        self.first, self.second = torch.nn.Conv2d(3, 3, 1), torch.nn.Conv2d(3, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.second(self.first(x)) + x).mean((2, 3))


def test_a_network_that_is_not_a_plain_sequence_is_left_whole() -> None:
    model = _Skip()
    first = model.first
    assert split_off(model, ["first"], np.random.default_rng(0).integers(0, 256, (2, 8, 8, 3), dtype=np.uint8)) is None
    assert model.first is first


def _trainable(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v for k, v in model.state_dict().items() if k.startswith(("layer3", "layer4", "fc"))}


@pytest.mark.slow
def test_training_on_stored_activations_matches_training_through_the_frozen_levels(splits, capsys) -> None:
    train, val = splits
    training = TrainSection(epochs=2, batch_size=16)
    results = []
    for frozen in (True, False):
        torch.manual_seed(0)
        model = build_model(CONFIG)
        names = freeze_levels(model, 3)
        before = {k: v.clone() for k, v in model.state_dict().items() if k.startswith(("conv1", "layer1"))}
        result = fit(model, train, val, training, 0, frozen=tuple(names) if frozen else ())
        assert all(torch.equal(result.model.state_dict()[k], v) for k, v in before.items())
        results.append(result)
    assert "activations computed once per image" in capsys.readouterr().out
    cached, live = results
    assert set(cached.model.state_dict()) == set(live.model.state_dict())  # whole again
    for key, value in _trainable(live.model).items():
        assert torch.allclose(cached.model.state_dict()[key], value, atol=1e-4), key
    assert [r["val_loss"] for r in cached.history] == pytest.approx([r["val_loss"] for r in live.history], abs=1e-4)


@pytest.mark.slow
def test_with_augmentation_the_frozen_levels_run_per_batch_without_autograd(splits, capsys) -> None:
    train, val = splits
    torch.manual_seed(0)
    model = build_model(CONFIG)
    names = freeze_levels(model, 2)
    result = fit(model, train, val, TrainSection(epochs=1, batch_size=16), 0,
                 AugmentSection.model_validate({"horizontal_flip": 0.5}), frozen=tuple(names))
    assert "run per batch without autograd" in capsys.readouterr().out
    assert isinstance(result.model.layer1, torch.nn.Sequential)  # put back
    assert len(result.history) == 1
