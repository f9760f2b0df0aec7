"""What the model looks at: Grad-CAM maps, and two checks that the maps mean something.

pytorch-grad-cam computes the maps (on the torch form of the deployable
candidate: an ONNX file has no gradients) and ROAD, the remove-and-debias
faithfulness score (Rong et al. 2022): pixels a map calls relevant are imputed
away and the drop in the deployed model's confidence is measured. A map that
is no better than a random map (pytorch-grad-cam's RandomCAM) explains nothing.
The model-randomisation check (Adebayo et al. 2018) asks the converse: maps of
a model with random weights must look different, or the map only shows edges
of the input.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from pytorch_grad_cam import GradCAM, RandomCAM
from pytorch_grad_cam.metrics.road import ROADCombined
from pytorch_grad_cam.utils.image import show_cam_on_image
from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget, ClassifierOutputTarget
from scipy.stats import spearmanr

Forward = Callable[[torch.Tensor], torch.Tensor]
"""Preprocessed NCHW tensor -> logits; the deployed ONNX model wrapped, or a torch model."""


MIN_GRID = 4
"""Smallest map side worth explaining with: a 1x1 map (layer4 of a ResNet at 32 px) says nothing about where."""


def target_layer(model: torch.nn.Module, size_px: int) -> torch.nn.Module:
    """The deepest feature stage timm reports for the backbone whose map is at least MIN_GRID wide (layer4 of
    a ResNet at 224 px, layer2 at 32 px): as semantic as the input size allows."""
    stages = [info for info in model.feature_info if size_px // info["reduction"] >= MIN_GRID] or model.feature_info[:1]
    return model.get_submodule(stages[-1]["module"])


def _cams(method: type, model: torch.nn.Module, inputs: torch.Tensor, classes: np.ndarray) -> np.ndarray:
    layer = target_layer(model, int(inputs.shape[-1]))
    with method(model=model.eval(), target_layers=[layer]) as cam:
        return cam(input_tensor=inputs, targets=[ClassifierOutputTarget(int(c)) for c in classes]).astype(np.float32)


def gradcam_maps(model: torch.nn.Module, inputs: torch.Tensor, classes: np.ndarray) -> np.ndarray:
    """One [0, 1] relevance map per image (N, H, W) for the given class of each image."""
    return _cams(GradCAM, model, inputs, classes)


def random_maps(model: torch.nn.Module, inputs: torch.Tensor, classes: np.ndarray, seed: int) -> np.ndarray:
    """RandomCAM's maps: random channel weights on the same activations, the baseline Grad-CAM must beat."""
    state = np.random.get_state()
    np.random.seed(seed)  # RandomCAM draws from numpy's global generator
    try:
        return _cams(RandomCAM, model, inputs, classes)
    finally:
        np.random.set_state(state)


def road_combined(forward: Forward, inputs: torch.Tensor, maps: np.ndarray, classes: np.ndarray,
                  seed: int) -> np.ndarray:
    """ROAD combined score per image: higher means removing the relevant pixels hurts more than removing the
    irrelevant ones (the map is faithful)."""
    torch.manual_seed(seed)  # the imputer adds noise
    targets = [ClassifierOutputSoftmaxTarget(int(c)) for c in classes]
    with torch.no_grad(), warnings.catch_warnings():
        # pytorch-grad-cam 1.5.7 hands torch tensors to numpy functions; numpy 2 warns about it on every call
        warnings.filterwarnings("ignore", "__array_wrap__ must accept context", DeprecationWarning)
        return np.asarray(ROADCombined()(inputs, maps, targets, forward), dtype=np.float64)


def randomised_copy(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """The same architecture with every layer re-initialised: the model-randomisation test's model."""
    torch.manual_seed(seed)
    clone = copy.deepcopy(model)
    for module in clone.modules():
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()
        if hasattr(module, "reset_running_stats"):
            module.reset_running_stats()
    return clone.eval()


def rank_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Mean Spearman correlation between paired maps; 0 for a map that is constant (no ranking to compare)."""
    values = []
    for x, y in zip(a, b, strict=True):
        if np.ptp(x) == 0 or np.ptp(y) == 0:
            values.append(0.0)
        else:
            values.append(float(spearmanr(x.ravel(), y.ravel()).statistic))
    return float(np.mean(values)) if values else 0.0


@dataclass(frozen=True)
class Explanations:
    maps: np.ndarray
    road_gradcam: float | None
    """Mean ROAD combined score of the Grad-CAM maps (None when no image is explained)."""
    road_random: float | None
    """The same for random maps."""
    randomised_rank_correlation: float | None
    """Mean Spearman correlation between maps of the model and of its weight-randomised copy."""

    @property
    def beats_random(self) -> bool | None:
        if self.road_gradcam is None or self.road_random is None:
            return None
        return self.road_gradcam > self.road_random


def explain(model: torch.nn.Module, forward: Forward, inputs: torch.Tensor, classes: np.ndarray,
            seed: int) -> Explanations:
    """Grad-CAM maps for `classes`, their ROAD score on `forward` against random maps, and the sanity check."""
    if not len(inputs):  # dependability.explain.gradcam_samples: 0
        return Explanations(np.zeros((0, *inputs.shape[-2:]), np.float32), None, None, None)
    maps = gradcam_maps(model, inputs, classes)
    baseline = random_maps(model, inputs, classes, seed)
    randomised = gradcam_maps(randomised_copy(model, seed), inputs, classes)
    return Explanations(maps=maps,
                        road_gradcam=round(float(road_combined(forward, inputs, maps, classes, seed).mean()), 6),
                        road_random=round(float(road_combined(forward, inputs, baseline, classes, seed).mean()), 6),
                        randomised_rank_correlation=round(rank_correlation(maps, randomised), 6))


def overlay(image: np.ndarray, relevance: np.ndarray) -> np.ndarray:
    """The map as a JET heat overlay on the uint8 RGB image (pytorch-grad-cam's own blending)."""
    return show_cam_on_image(image.astype(np.float32) / 255.0, relevance, use_rgb=True, image_weight=0.55)
