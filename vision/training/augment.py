"""Spec augmentations and corruptions as albumentations pipelines.

One table maps each named condition (fog, night, motion blur...) and a severity
from 1 to 5 to albumentations transforms. Training samples them with the spec's
probabilities; the dependability checks apply the same table at p=1, so the
model is trained and tested against the same definition of "fog at severity 3".
Sizes (blur kernels, hole sizes, rain drops) scale with the image, so a severity
looks alike at 32 px and at 224 px.
"""

from __future__ import annotations

import functools
import importlib.util
import math
import random
from collections.abc import Callable
from pathlib import Path

import albumentations as A
import cv2
import numpy as np
from PIL import Image

from core.spec.training import AugmentSection
from vision.training.fog import FastRandomFog

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


FOG_WORKING_SIZE = 224
"""RandomFog draws particles at least 10 px wide whatever the image size, so on small images a low severity
fogged more than a high one (measured at 32 px: accuracy 0.39 at severity 1, 0.77 at 3). Fog is drawn at
this size and resized back, so a severity means the same fog at any input size."""


class AtWorkingSize(A.ImageOnlyTransform):
    """`inner` applied to the image resized to side x side, and the result resized back to the image's own
    shape (square or not: a detector's input may be wider than high). A transform class because albumentations
    has none that restores the input's shape; the inner transform draws from the same seeded generators."""

    def __init__(self, inner: A.BasicTransform, side: int, p: float = 1.0):
        self.inner, self.side = inner, side  # before the base class seeds itself (and with it, `inner`)
        super().__init__(p=p)

    def set_random_seed(self, seed: int | None) -> None:
        """A seeded Compose seeds its transforms through this: the inner transform must follow, or its draws
        would come from an unseeded generator and a rerun would see other images."""
        super().set_random_seed(seed)
        self.inner.set_random_seed(seed)

    def set_random_state(self, random_generator: np.random.Generator, py_random: random.Random) -> None:
        super().set_random_state(random_generator, py_random)
        self.inner.set_random_state(random_generator, py_random)

    def apply(self, img: np.ndarray, **params: object) -> np.ndarray:
        height, width = img.shape[:2]
        out = self.inner(image=cv2.resize(img, (self.side, self.side), interpolation=cv2.INTER_LINEAR))["image"]
        out = cv2.resize(out, (width, height), interpolation=cv2.INTER_AREA)
        return out.reshape(img.shape)

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("inner", "side")


def _fog(severity: int, size: int) -> A.BasicTransform:
    fog = FastRandomFog(fog_coef_range=(0.12 * severity, 0.12 * severity + 0.1), alpha_coef=0.12, p=1.0)
    return fog if size >= FOG_WORKING_SIZE else AtWorkingSize(fog, FOG_WORKING_SIZE)


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


FROST_BLEND = ((1.0, 0.4), (0.8, 0.6), (0.7, 0.7), (0.65, 0.7), (0.6, 0.75))
"""(image weight, frost weight) per severity, as in ImageNet-C's frost."""


@functools.cache
def frost_textures() -> tuple[np.ndarray, ...]:
    """The six photographed ice textures ImageNet-C's frost uses, from the imagecorruptions wheel.

    Only its image files are read (found without importing the package, whose code needs a full OpenCV and
    an old SciPy): albumentations has no frost, and the textures are what makes it frost.
    """
    spec = importlib.util.find_spec("imagecorruptions")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the frost corruption needs the imagecorruptions package (`make install` adds it)")
    folder = Path(next(iter(spec.submodule_search_locations))) / "frost"
    return tuple(np.asarray(Image.open(file).convert("RGB")) for file in sorted(folder.glob("frost*")))


class Frost(A.ImageOnlyTransform):
    """Ice on the lens: a random window of a frost texture blended over the image (ImageNet-C's recipe).

    The window is FOG_WORKING_SIZE wide (or the image's size, when larger) and resized to the image, so a
    severity looks alike at any input size. A transform class because albumentations has no frost.
    """

    def __init__(self, severity: int, p: float = 1.0):
        super().__init__(p=p)
        self.severity = severity

    def get_params(self) -> dict[str, float | int]:
        return {"texture": self.py_random.randrange(len(frost_textures())), "top": self.py_random.random(),
                "left": self.py_random.random()}

    def apply(self, img: np.ndarray, texture: int = 0, top: float = 0.0, left: float = 0.0,
              **params: object) -> np.ndarray:
        height, width = img.shape[:2]
        window = max(FOG_WORKING_SIZE, height, width)
        frost = Image.fromarray(frost_textures()[texture])
        scale = 1.1 * window / min(frost.size)  # ImageNet-C: the texture covers the window with 10% to spare
        if scale > 1:
            frost = frost.resize((math.ceil(frost.width * scale), math.ceil(frost.height * scale)),
                                 Image.Resampling.BICUBIC)
        y, x = int(top * (frost.height - window)), int(left * (frost.width - window))
        crop = frost.crop((x, y, x + window, y + window)).resize((width, height), Image.Resampling.BILINEAR)
        layer = np.asarray(crop, dtype=np.float32)
        if img.ndim == 2 or img.shape[-1] == 1:
            layer = layer.mean(-1, keepdims=img.ndim == 3)
        image_weight, frost_weight = FROST_BLEND[self.severity - 1]
        return np.clip(image_weight * img.astype(np.float32) + frost_weight * layer, 0, 255).astype(np.uint8)

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("severity",)


def _frost(severity: int, size: int) -> A.BasicTransform:
    return Frost(severity, p=1.0)


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
    "frost": _frost,
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
