"""Transfer modes: frozen levels get no gradient and keep their bytes; the cached-feature probe equals the live
one; the thawed model saves and loads like any other."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torchvision.ops.misc import FrozenBatchNorm2d

from core.spec.training import TrainSection
from tests.conftest import TINY_CLASSES, tiny_split_data
from vision.training import modes
from vision.training.fit import fit
from vision.training.freeze import cached, freeze_levels, frozen_modules, live, pooled_features, probe, thaw
from vision.training.model import ModelConfig, build_model, load_model, save_model
from vision.training.modes import THAW_LR_SHARE, fit_with_mode

SIZE = 16
CONFIG = ModelConfig("resnet10t", TINY_CLASSES, SIZE)


def test_levels_cover_the_stem_then_whole_stages_in_forward_order() -> None:
    model = build_model(CONFIG)
    assert frozen_modules(model, 0) == []
    assert frozen_modules(model, 1) == ["conv1", "bn1", "act1"]  # the stem
    assert frozen_modules(model, 3) == ["conv1", "bn1", "act1", "maxpool", "layer1", "layer2"]
    lite = build_model(ModelConfig("tf_efficientnet_lite0", TINY_CLASSES, 32))
    assert frozen_modules(lite, 2) == ["conv_stem", "bn1", "blocks.0", "blocks.1"]  # not the whole `blocks`
    with pytest.raises(ValueError, match="has 5 levels"):
        frozen_modules(model, 6)


@pytest.fixture(scope="module")
def splits(tiny_digits: Path):
    return tiny_split_data(tiny_digits, SIZE, ("train", "val"))


@pytest.mark.slow
def test_frozen_levels_get_no_gradient_and_keep_their_bytes(splits) -> None:
    train, val = splits
    torch.manual_seed(0)
    model = build_model(CONFIG)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    names = freeze_levels(model, 3)
    assert isinstance(model.bn1, FrozenBatchNorm2d)
    frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
    assert frozen
    assert all(n.split(".")[0] in {"conv1", "bn1", "layer1", "layer2"} for n in frozen)
    x = torch.from_numpy(train.images[:8]).permute(0, 3, 1, 2).float() / 255
    model.train()(x).sum().backward()
    assert all(p.grad is None for n, p in model.named_parameters() if n in frozen)
    assert all(p.grad is not None for n, p in model.named_parameters() if n.startswith("layer4"))
    model.zero_grad(set_to_none=True)
    result = fit(model, train, val, TrainSection(epochs=2, batch_size=16), 0, progress=False)
    thaw(result.model, names)
    after = result.model.state_dict()
    kept = [k for k in before if k.split(".")[0] in {"conv1", "bn1", "layer1", "layer2"}
            and not k.endswith("num_batches_tracked")]
    assert kept
    for key in kept:  # weights and BatchNorm statistics alike
        assert torch.equal(before[key], after[key]), key
    assert not torch.equal(before["layer4.0.conv1.weight"], after["layer4.0.conv1.weight"])
    assert isinstance(result.model.bn1, torch.nn.BatchNorm2d)


@pytest.mark.slow
def test_the_probe_on_cached_features_equals_the_probe_through_the_backbone(splits) -> None:
    train, val = splits
    training = TrainSection(epochs=3, batch_size=16, select_by="val_accuracy")
    heads = []
    for source in ("cached", "live"):
        torch.manual_seed(0)
        model = build_model(CONFIG).eval()
        feed = (cached(pooled_features(model, train.images)) if source == "cached" else live(model, train.images))
        result = probe(model, train, val, training, seed=3, source=feed)
        heads.append((model.get_classifier().weight.detach().clone(), result))
    (cached_weight, cached_result), (live_weight, live_result) = heads
    assert torch.allclose(cached_weight, live_weight, atol=1e-5)
    assert cached_result.kept_epoch == live_result.kept_epoch
    assert [r["val_accuracy"] for r in cached_result.history] == [r["val_accuracy"] for r in live_result.history]


@pytest.mark.slow
def test_a_probe_trains_only_the_head_and_the_model_saves_and_loads(splits, tmp_path: Path) -> None:
    train, val = splits
    torch.manual_seed(0)
    model = build_model(CONFIG)
    backbone = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith("fc.")}
    result = fit_with_mode(model, train, val, TrainSection(epochs=20, batch_size=16, freeze="all",
                                                           optimizer={"lr": 0.01}), 0, progress=False)
    assert all(torch.equal(v, result.model.state_dict()[k]) for k, v in backbone.items())
    assert result.val_accuracy > 1 / 3  # the head learned something from random-backbone features
    save_model(result.model, CONFIG, tmp_path / "m")
    loaded, _ = load_model(tmp_path / "m")
    x = torch.from_numpy(val.images[:4]).permute(0, 3, 1, 2).float() / 255
    assert torch.allclose(loaded.eval()(x), result.model.eval()(x), atol=1e-6)


@pytest.mark.slow
def test_partial_fine_tuning_after_a_warm_start_saves_an_ordinary_model(splits, tmp_path: Path) -> None:
    train, val = splits
    torch.manual_seed(0)
    result = fit_with_mode(build_model(CONFIG), train, val,
                           TrainSection(epochs=2, batch_size=16, freeze=2, warm_start=True), 0, progress=False)
    assert not any(isinstance(m, FrozenBatchNorm2d) for m in result.model.modules())
    assert all(p.requires_grad for p in result.model.parameters())
    save_model(result.model, CONFIG, tmp_path / "m")
    loaded, _ = load_model(tmp_path / "m")
    assert set(loaded.state_dict()) == set(result.model.state_dict())
    assert np.isfinite(result.history[-1]["val_loss"])


@pytest.mark.slow
def test_thawed_epochs_train_every_level_after_the_frozen_ones_and_keep_the_better_phase(splits) -> None:
    train, val = splits
    torch.manual_seed(0)
    model = build_model(CONFIG)
    stem = model.conv1[0].weight.detach().clone()
    training = TrainSection(epochs=2, batch_size=16, freeze=3, thaw_epochs=2, select_by="val_accuracy")
    result = fit_with_mode(model, train, val, training, 0, progress=False)
    assert [row["epoch"] for row in result.history] == [1, 2, 3, 4]  # one history: 2 frozen, then 2 thawed
    assert result.history[2]["lr"] == pytest.approx(training.optimizer.lr * THAW_LR_SHARE)
    best = max(result.history, key=lambda row: row["val_accuracy"])
    assert result.kept_epoch == best["epoch"]  # the better phase's best epoch, the earlier one on a tie
    if result.kept_epoch > 2:  # the thawed epochs improved on the frozen ones: the stem moved
        assert not torch.equal(stem, result.model.conv1[0].weight)
    else:  # they did not: the model holds the frozen phase's weights, its stem as loaded
        assert torch.equal(stem, result.model.conv1[0].weight)
    assert all(p.requires_grad for p in result.model.parameters())


@pytest.mark.slow
def test_the_frozen_phase_is_kept_when_training_every_level_does_not_improve_on_it(splits, monkeypatch) -> None:
    train, val = splits
    torch.manual_seed(0)
    model = build_model(CONFIG)
    stem = model.conv1[0].weight.detach().clone()
    monkeypatch.setattr(modes, "THAW_LR_SHARE", 1e4)  # the thawed epoch at a learning rate of 10 wrecks the model
    training = TrainSection(epochs=2, batch_size=16, freeze=3, thaw_epochs=1, select_by="val_loss")
    result = fit_with_mode(model, train, val, training, 0, progress=False)
    assert len(result.history) == 3
    assert result.kept_epoch <= 2
    assert torch.equal(stem, result.model.conv1[0].weight)
    assert np.isfinite(result.history[result.kept_epoch - 1]["val_loss"])
