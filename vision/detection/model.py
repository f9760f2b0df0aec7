"""The detector: a timm `features_only` backbone, torchvision's feature pyramid and torchvision's FCOS head,
matching and losses; its forward returns raw tensors only.

torchvision's `FCOS` model holds the parts and computes the loss (centre sampling, scale ranges, focal, GIoU
and centerness losses), so nothing of the training objective is written here. Its own forward is not used:
it resizes and decodes inside the graph, which is what breaks two-stage exports. `Detector.forward` runs
backbone, pyramid and head and returns (class logits [B, A, C], box regression [B, A, 4], centerness [B, A],
pooled features [B, F]); decoding and NMS are runtime.detections's, shared with the server.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import timm
import torch
from torch import nn
from torchvision.models.detection import FCOS
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.fcos import FCOSHead
from torchvision.ops import FeaturePyramidNetwork
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

from runtime.detections import anchor_boxes, level_shapes

OUTPUT_NAMES = ("class_logits", "box_regression", "centerness", "features")
"""The exported graph's outputs, in order; `features` (the backbone's last level, pooled) is what image-level
OOD detectors read."""


@dataclass(frozen=True)
class DetectorConfig:
    """Everything that fixes the network's shape: saved with the weights, so a model file rebuilds exactly."""

    backbone: str
    classes: tuple[str, ...]
    input_wh: tuple[int, int]
    strides: tuple[int, ...]
    fpn_channels: int = 64
    head_convs: int = 2
    center_sampling_radius: float = 1.5

    def to_json(self) -> dict[str, object]:
        return {"backbone": self.backbone, "classes": list(self.classes), "input_wh": list(self.input_wh),
                "strides": list(self.strides), "fpn_channels": self.fpn_channels, "head_convs": self.head_convs,
                "center_sampling_radius": self.center_sampling_radius}

    @staticmethod
    def from_json(raw: dict) -> DetectorConfig:
        return DetectorConfig(raw["backbone"], tuple(raw["classes"]), tuple(raw["input_wh"]), tuple(raw["strides"]),
                              int(raw["fpn_channels"]), int(raw["head_convs"]), float(raw["center_sampling_radius"]))


class _Pyramid(nn.Module):
    """Backbone levels at the configured strides -> FPN maps; an extra max-pooled level when the largest stride
    is one more halving than the backbone has (P6 from P5, as in RetinaNet and FCOS)."""

    def __init__(self, config: DetectorConfig, body: nn.Module):
        super().__init__()
        reductions = list(body.feature_info.reduction())
        channels = list(body.feature_info.channels())
        self.take = [reductions.index(s) for s in config.strides if s in reductions]
        extra = [s for s in config.strides if s not in reductions]
        if extra != ([2 * max(reductions)] if extra else []):
            raise ValueError(f"backbone {config.backbone} has strides {reductions}; it cannot give {config.strides}")
        self.body = body
        self.fpn = FeaturePyramidNetwork([channels[i] for i in self.take], config.fpn_channels,
                                         extra_blocks=LastLevelMaxPool() if extra else None)
        self.out_channels = config.fpn_channels

    def maps(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """(the pyramid's maps, the backbone's deepest level)."""
        levels = self.body(x)
        return list(self.fpn(OrderedDict((str(n), levels[i]) for n, i in enumerate(self.take))).values()), levels[-1]

    def forward(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        """torchvision's backbone interface (FCOS requires one; Detector.forward uses `maps`)."""
        maps, _ = self.maps(x)
        return OrderedDict((str(n), m) for n, m in enumerate(maps))


class Detector(nn.Module):
    def __init__(self, config: DetectorConfig, body: nn.Module | None = None):
        super().__init__()
        self.config = config
        body = body if body is not None else timm.create_model(config.backbone, pretrained=False, features_only=True)
        pyramid = _Pyramid(config, body)
        sizes = tuple((s,) for s in config.strides)
        self.fcos = FCOS(pyramid, num_classes=len(config.classes),
                         anchor_generator=AnchorGenerator(sizes, ((1.0,),) * len(sizes)),
                         head=FCOSHead(config.fpn_channels, 1, len(config.classes), config.head_convs),
                         center_sampling_radius=config.center_sampling_radius)
        self.num_classes = len(config.classes)
        anchors = torch.from_numpy(anchor_boxes(config.input_wh, config.strides))
        self.register_buffer("anchors", anchors, persistent=False)
        self.level_sizes = [rows * cols for rows, cols in level_shapes(config.input_wh, config.strides)]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        maps, deepest = self.fcos.backbone.maps(x)
        head = self.fcos.head(maps)
        features = deepest.mean(dim=(2, 3))
        return head["cls_logits"], head["bbox_regression"], head["bbox_ctrness"].squeeze(-1), features

    def loss(self, outputs: tuple[torch.Tensor, ...],
             targets: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        """torchvision FCOS's losses for `targets` (per image: `boxes` [N, 4] xyxy in input pixels, `labels` [N]):
        classification (sigmoid focal), bbox_regression (GIoU), bbox_ctrness (BCE), each per foreground location."""
        class_logits, regression, centerness, _ = outputs
        head = {"cls_logits": class_logits, "bbox_regression": regression, "bbox_ctrness": centerness.unsqueeze(-1)}
        anchors = [self.anchors] * len(targets)
        return self.fcos.compute_loss(targets, head, anchors, self.level_sizes)


def build_detector(config: DetectorConfig, pretrained: str | None = None) -> Detector:
    """A fresh detector; with `pretrained` (offline ImageNet weights, vision.training.pretrained), the backbone
    starts from them."""
    if pretrained is None:
        return Detector(config)
    from vision.training.pretrained import load_pretrained

    classifier = load_pretrained(pretrained)
    body = timm.create_model(config.backbone, pretrained=False, features_only=True)
    missing, _ = body.load_state_dict(classifier.state_dict(), strict=False)
    if missing:
        raise ValueError(f"{pretrained} weights leave {len(missing)} backbone tensors unset (e.g. {missing[0]})")
    return Detector(config, body)


def count_parameters(model: nn.Module) -> int:
    return int(sum(np.prod(p.shape) for p in model.parameters()))
