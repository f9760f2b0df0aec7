"""The spec's augmentations for detection: albumentations with `BboxParams`, so every geometric change moves
the boxes with the pixels and a box cut below `min_visibility` of its area leaves that training view.

The corruption table (weather, night, blur, pixelation, occlusion...) is classification's own
(vision.training.augment.CORRUPTIONS), so "fog at severity 3" means the same for both tasks; flips mirror
boxes, and `random_crop` is a box-safe crop (every box stays whole) resized back to the input.
"""

from __future__ import annotations

import albumentations as A

from core.spec.training import AugmentSection
from vision.training.augment import CORRUPTIONS, GEOMETRIC_AND_COLOUR, enabled


def _standard(name: str, input_wh: tuple[int, int], p: float) -> A.BasicTransform:
    if name == "horizontal_flip":
        return A.HorizontalFlip(p=p)
    if name == "random_crop":
        return A.RandomSizedBBoxSafeCrop(height=input_wh[1], width=input_wh[0], erosion_rate=0.0, p=p)
    return A.ColorJitter(brightness=0.25, contrast=0.25, saturation=0.25, hue=0.02, p=p)


def detection_pipeline(augment: AugmentSection | None, input_wh: tuple[int, int], min_visibility: float,
                       seed: int) -> A.Compose | None:
    """The spec's augmentations with box handling (pascal_voc: xyxy pixels, class indices in `labels`); None when
    all are off."""
    names = enabled(augment) if augment is not None else []
    if not names:
        return None
    side = min(input_wh)
    transforms = [_standard(n, input_wh, getattr(augment, n)) if n in GEOMETRIC_AND_COLOUR
                  else A.Sequential([CORRUPTIONS[n](augment.severity, side)], p=getattr(augment, n))
                  for n in names]
    return A.Compose(transforms, bbox_params=box_params(min_visibility), seed=seed)


def box_params(min_visibility: float) -> A.BboxParams:
    return A.BboxParams(format="pascal_voc", label_fields=["labels"], min_visibility=min_visibility,
                        clip=True)
