"""A deployable detector where the test split does not look: corruptions that keep every box in place,
image-level out-of-distribution scores from pooled backbone features, and EigenCAM explanations."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from runtime.detections import Decoding, Detections
from vision.data.streams import materialise
from vision.dependability.explain import overlay
from vision.dependability.ood_sets import noise_images, photo_crops, shuffled_patches
from vision.detection.data import DetectionSplit, letterbox
from vision.detection.model import Detector
from vision.detection.onnx import Corrupt, run_split, split_map
from vision.plots import draw_boxes, image_grid
from vision.training.augment import apply, corruption

GEOMETRIC = ("elastic", "perspective", "rotation")
"""Corruptions that move pixels: a detector's boxes would no longer be where the annotation says, so the sweep
refuses them (compiler.task_checks says so at compile time)."""


def corrupt_batches(name: str, severity: int, seed: int) -> Corrupt:
    """`name` at `severity` for letterboxed batches; one seeded pipeline per sweep, drawing image after image,
    so every rerun draws the same corruptions. Pixel-only: every box stays where it is."""
    if name in GEOMETRIC:
        raise ValueError(f"{name} moves pixels, so boxes would move: not a detection corruption")
    state: dict[str, object] = {}

    def change(images: np.ndarray) -> np.ndarray:
        if "pipeline" not in state:
            state["pipeline"] = corruption(name, severity, int(images.shape[1]), seed)
        return np.stack([apply(state["pipeline"], image) for image in images])  # type: ignore[arg-type]

    return change


@dataclass(frozen=True)
class SweepRow:
    corruption: str
    severity: int
    map: float
    map50: float
    seen_in_training: bool


def corruption_sweep(sess: ort.InferenceSession, test: DetectionSplit, decoding: Decoding, classes: list[str],
                     corruptions: Sequence[str], severities: Sequence[int], trained_on: set[str], seed: int,
                     on_row: Callable[[SweepRow], None] | None = None) -> list[SweepRow]:
    """Test mAP50-95 and mAP50 under every corruption x severity, against the unchanged boxes."""
    rows = []
    for name in corruptions:
        for severity in severities:
            found = run_split(sess, test, decoding, corrupt_batches(name, severity, seed)).found
            figures = split_map(found, test, classes, decoding.max_detections)
            rows.append(SweepRow(name, severity, round(figures["map"], 6), round(figures["map50"], 6),
                                 name in trained_on))
            if on_row:
                on_row(rows[-1])
    return rows


def texture_images(count: int, size_px: int, seed: int) -> np.ndarray:
    """`count` colour textures, each three random oriented sine gratings (2 to 24 cycles across) summed: surfaces
    with structure and edges everywhere and no object, the kind of image a detector must not answer for. Made
    here because no texture set ships inside a package (scikit-image's brick, grass and gravel are photographs
    the photo set already samples)."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:size_px, 0:size_px].astype(np.float64) / size_px
    images = np.empty((count, size_px, size_px, 3), np.uint8)
    for index in range(count):
        image = np.zeros((size_px, size_px, 3))
        for _ in range(3):
            angle, cycles, phase = rng.uniform(0, np.pi), rng.uniform(2, 24), rng.uniform(0, 2 * np.pi)
            wave = np.sin(2 * np.pi * cycles * (xs * np.cos(angle) + ys * np.sin(angle)) + phase)
            image += wave[..., None] * rng.uniform(-1, 1, 3)
        low, high = image.min(), image.max()
        images[index] = np.round(255 * (image - low) / max(high - low, 1e-9)).astype(np.uint8)
    return images


def far_and_near_sets(test_images: np.ndarray, input_wh: tuple[int, int], seed: int, count: int = 64,
                      photos: bool = True) -> dict[str, tuple[str, np.ndarray]]:
    """Image sets serving should abstain on, letterboxed like every request, each with its kind: far ones
    (photographs with none of the classes, unless `photos` is False because the project's own images are built
    on those photographs; textures; noise) and a near one (test images with their patches shuffled: the same
    textures, no whole objects)."""
    side = max(input_wh)

    def boxed(images: np.ndarray) -> np.ndarray:
        return np.stack([letterbox(image, input_wh)[0] for image in images])

    sets = {"photos": ("far", boxed(photo_crops(count, side, seed)))} if photos else {}
    return {**sets, "textures": ("far", boxed(texture_images(count, side, seed + 3))),
            "noise": ("far", boxed(noise_images(count, side, seed + 1))),
            "shuffled_patches": ("near", materialise(shuffled_patches(test_images[:count], 4, seed + 2)))}


class _Logits(torch.nn.Module):
    """EigenCAM reads activations only; pytorch-grad-cam still wants a model with one tensor out."""

    def __init__(self, model: Detector):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)[0]


def eigencam_maps(model: Detector, inputs: torch.Tensor) -> np.ndarray:
    """EigenCAM (first principal component of the activations, no gradients or class needed, so it explains a
    detector as a whole) over the feature pyramid's output levels, averaged at input resolution."""
    from pytorch_grad_cam import EigenCAM

    layers = list(model.fcos.backbone.fpn.layer_blocks)
    with EigenCAM(_Logits(model.eval()), layers) as cam:
        return cam(inputs, targets=[lambda output: output.sum()] * len(inputs))


def eigencam_gallery(images: np.ndarray, maps: np.ndarray, truth: list[tuple[np.ndarray, np.ndarray]],
                     found: list[Detections], classes: list[str], confidence: float, path: Path, title: str) -> None:
    """Each letterboxed image with its EigenCAM overlay, true boxes (green) and detections above `confidence`
    (red), in input pixels."""
    drawn = []
    for image, relevance, (boxes, labels), detections in zip(images, maps, truth, found, strict=True):
        keep = detections.scores >= confidence
        layers = [(boxes, [classes[i] for i in labels], (60, 220, 60)),
                  (detections.boxes[keep], [f"{classes[i]} {s:.2f}" for i, s in
                                            zip(detections.labels[keep], detections.scores[keep], strict=True)],
                   (235, 60, 60))]
        drawn.append(draw_boxes(overlay(image, relevance), layers))
    per_row = 4
    rows = [("", drawn[i:i + per_row], ["" for _ in drawn[i:i + per_row]]) for i in range(0, len(drawn), per_row)]
    image_grid(rows or [("", [], [])], path, title)
