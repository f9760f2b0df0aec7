"""Spec augmentations and corruptions as albumentations pipelines.

One table maps each named condition (fog, night, motion blur...) and a severity
from 1 to 5 to albumentations transforms. Training samples them with the spec's
probabilities; the dependability checks apply the same table at p=1, so the
model is trained and tested against the same definition of "fog at severity 3".
Sizes (blur kernels, hole sizes, rain drops) scale with the image, so a severity
looks alike at 32 px and at 224 px.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import albumentations as A
import numpy as np

from compiler.spec.training import AugmentSection

Builder = Callable[[int, int], A.BasicTransform]
"""(severity 1..5, image size in px) -> a transform applied with p=1."""

PIXELATE_SCALE = (0.6, 0.5, 0.4, 0.3, 0.25)
"""Down-scale factor per severity, as in the ImageNet-C pixelate corruption (Hendrycks & Dietterich 2019)."""
NOISE_STD = (0.08, 0.12, 0.18, 0.26, 0.38)
"""Gaussian noise standard deviation per severity (ImageNet-C gaussian_noise), as a fraction of 255."""


def _odd_at_least_3(value: float) -> int:
    return max(3, 2 * math.floor(value / 2) + 1)


def _motion_blur(severity: int, size: int) -> A.BasicTransform:
    kernel = _odd_at_least_3(size * (0.03 + 0.04 * severity))
    return A.MotionBlur(blur_limit=(kernel, kernel), allow_shifted=False, p=1.0)


def _low_light(severity: int, size: int) -> A.BasicTransform:
    """Night: darker mid-tones (gamma), less light overall, and the sensor noise that comes with it."""
    gamma = 100 + 30 * severity
    darker = -0.06 * severity
    return A.Sequential([
        A.RandomGamma(gamma_limit=(gamma, gamma + 20), p=1.0),
        A.RandomBrightnessContrast(brightness_limit=(darker - 0.05, darker), contrast_limit=(-0.1, 0.0), p=1.0),
        A.GaussNoise(std_range=(0.015 * severity, 0.02 * severity), p=1.0),
    ], p=1.0)


def _pixelate(severity: int, size: int) -> A.BasicTransform:
    scale = PIXELATE_SCALE[severity - 1]
    return A.Downscale(scale_range=(scale, scale), interpolation_pair={"downscale": 3, "upscale": 0}, p=1.0)


def _fog(severity: int, size: int) -> A.BasicTransform:
    return A.RandomFog(fog_coef_range=(0.12 * severity, 0.12 * severity + 0.1), alpha_coef=0.12, p=1.0)


def _rain(severity: int, size: int) -> A.BasicTransform:
    return A.RandomRain(slant_range=(-10, 10), drop_length=max(2, round(size * (0.08 + 0.04 * severity))),
                        drop_width=1, blur_value=3, brightness_coefficient=1.0 - 0.06 * severity,
                        rain_type=("drizzle", "drizzle", "heavy", "heavy", "torrential")[severity - 1], p=1.0)


def _snow(severity: int, size: int) -> A.BasicTransform:
    coverage = 0.06 * severity
    return A.RandomSnow(snow_point_range=(coverage, coverage + 0.05), brightness_coeff=2.0, method="bleach", p=1.0)


def _occlusion(severity: int, size: int) -> A.BasicTransform:
    side = 0.1 + 0.04 * severity
    return A.CoarseDropout(num_holes_range=(1, 1 + severity // 2), hole_height_range=(side, side + 0.05),
                           hole_width_range=(side, side + 0.05), fill=0, p=1.0)


def _gaussian_noise(severity: int, size: int) -> A.BasicTransform:
    std = NOISE_STD[severity - 1]
    return A.GaussNoise(std_range=(std, std), p=1.0)


def _elastic(severity: int, size: int) -> A.BasicTransform:
    """Local rubber-sheet warping (shape): displacement grows with severity, smoothness with image size."""
    return A.ElasticTransform(alpha=size * (0.5 + 0.5 * severity), sigma=size * 0.12, border_mode=0, fill=0, p=1.0)


def _perspective(severity: int, size: int) -> A.BasicTransform:
    """A camera that is not square-on to the scene (3-D pose)."""
    return A.Perspective(scale=(0.02 * severity, 0.02 * severity + 0.02), keep_size=True, fill=0, p=1.0)


def _rotation(severity: int, size: int) -> A.BasicTransform:
    """In-plane rotation by 8 degrees per severity step, either way."""
    angle = 8.0 * severity
    return A.OneOf([A.Rotate(limit=(angle, angle), border_mode=0, fill=0, p=1.0),
                    A.Rotate(limit=(-angle, -angle), border_mode=0, fill=0, p=1.0)], p=1.0)


CORRUPTIONS: dict[str, Builder] = {
    "motion_blur": _motion_blur,
    "low_light": _low_light,
    "pixelate": _pixelate,
    "fog": _fog,
    "rain": _rain,
    "snow": _snow,
    "occlusion": _occlusion,
    "gaussian_noise": _gaussian_noise,
    "elastic": _elastic,
    "perspective": _perspective,
    "rotation": _rotation,
}
"""Conditions the deployed model meets; names match the spec's augment and robustness keys."""

GEOMETRIC_AND_COLOUR = ("horizontal_flip", "random_crop", "color_jitter")


def corruption(name: str, severity: int, size_px: int, seed: int = 0) -> A.Compose:
    """`name` at `severity`, always applied: what robustness checks and the preview grid show."""
    if not 1 <= severity <= 5:
        raise ValueError(f"severity must be 1..5 (got {severity})")
    return A.Compose([CORRUPTIONS[name](severity, size_px)], seed=seed)


def _standard(name: str, size_px: int, p: float) -> A.BasicTransform:
    if name == "horizontal_flip":
        return A.HorizontalFlip(p=p)
    if name == "random_crop":
        return A.RandomResizedCrop(size=(size_px, size_px), scale=(0.7, 1.0), ratio=(0.9, 1.1), p=p)
    return A.ColorJitter(brightness=0.25, contrast=0.25, saturation=0.25, hue=0.02, p=p)


def enabled(augment: AugmentSection) -> list[str]:
    """Augmentations the spec turns on (probability > 0), in a fixed order."""
    names = (*GEOMETRIC_AND_COLOUR, *(n for n in CORRUPTIONS if n in AugmentSection.model_fields))
    return [name for name in names if getattr(augment, name) > 0]


def training_pipeline(augment: AugmentSection, size_px: int, seed: int) -> A.Compose | None:
    """The spec's training augmentations, each drawn with its own probability; None when all are off."""
    names = enabled(augment)
    if not names:
        return None
    transforms = [_standard(n, size_px, getattr(augment, n)) if n in GEOMETRIC_AND_COLOUR
                  else A.Sequential([CORRUPTIONS[n](augment.severity, size_px)], p=getattr(augment, n))
                  for n in names]
    return A.Compose(transforms, seed=seed)


def apply(pipeline: A.Compose, image: np.ndarray) -> np.ndarray:
    return pipeline(image=image)["image"]
