"""Model outputs on pool images, the inputs of vision.loop.choose: the deployable file through the same
Artifact the server runs (calibrated probabilities, features, OOD abstention, detections), MC-dropout samples
and ensemble members through torch."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from PIL import Image

from runtime.artifact import Artifact
from runtime.detections import Detections, iou_matrix
from vision.data.labelstudio import Guess

BATCH = 32


def _rgb(path: Path) -> Image.Image:
    with Image.open(path) as image:
        return image.convert("RGB")


class FedBatch(NamedTuple):
    tensor: np.ndarray
    """Normalised network inputs, fitted as the server fits them."""
    sizes: list[tuple[int, int]]
    """Each image's own width and height."""
    paths: list[Path]
    """The images' files: a tiled detector reads each again at full size, one batch at a time."""

    def full_images(self) -> list[np.ndarray]:
        return [np.asarray(_rgb(p), dtype=np.uint8) for p in self.paths]


def inputs(artifact: Artifact, paths: list[Path]) -> Iterator[FedBatch]:
    """The pool a batch at a time, as the server would receive it."""
    for start in range(0, len(paths), BATCH):
        chosen = paths[start:start + BATCH]
        images = [_rgb(p) for p in chosen]
        yield FedBatch(artifact.normalise(np.stack([artifact.fit(i) for i in images])), [i.size for i in images],
                       list(chosen))


@dataclass(frozen=True)
class Classified:
    probabilities: np.ndarray
    """Calibrated, N x C."""
    features: np.ndarray
    ood_scores: np.ndarray
    abstained: np.ndarray


Fed = Iterable[FedBatch]
"""What `inputs` yields: pass a list of it to score the same images again without decoding them twice."""


def classify(artifact: Artifact, fed: Fed) -> Classified:
    parts = []
    for batch in fed:
        prediction = artifact.predict(batch.tensor)
        parts.append((prediction.probabilities, prediction.features, prediction.ood_scores, prediction.abstained))
    if not parts:
        return Classified(np.zeros((0, len(artifact.classes))), np.zeros((0, 0)), np.zeros(0), np.zeros(0, bool))
    return Classified(*(np.concatenate(column) for column in zip(*parts, strict=True)))


@dataclass(frozen=True)
class Detected:
    detections: list[Detections]
    """Calibrated, in each image's own pixels."""
    ood_scores: np.ndarray
    abstained: np.ndarray


def detect(artifact: Artifact, fed: Fed) -> Detected:
    """Every detection down to the decoder's floor (the unsure ones are what the loop is after), calibrated."""
    found: list[Detections] = []
    ood, abstained = [], []
    request = artifact.default_request()
    floor = type(request)(0.0, request.nms_iou, request.max_detections)
    for batch in fed:
        prediction = artifact.detect(batch.tensor, batch.sizes, floor, batch.full_images() if artifact.tiled else None)
        found.extend(prediction.detections)
        ood.append(prediction.ood_scores)
        abstained.append(prediction.abstained)
    return Detected(found, np.concatenate(ood) if ood else np.zeros(0), np.concatenate(abstained) if abstained
                    else np.zeros(0, bool))


@torch.inference_mode()
def mc_dropout_samples(model: torch.nn.Module, batches: list[np.ndarray], passes: int, dropout: float,
                       temperature: float, seed: int) -> np.ndarray:
    """T x N x C softmax samples with dropout on the pooled features before the classifier (last-layer MC
    dropout: the trained network needs no dropout of its own, and one feature pass serves every sample)."""
    model.eval()
    generator = torch.Generator().manual_seed(seed)
    head = model.get_classifier()
    features = torch.cat([model.forward_head(model.forward_features(torch.from_numpy(b)), pre_logits=True)
                          for b in batches]) if batches else torch.zeros((0, 1))
    samples = []
    for _ in range(passes):
        keep = (torch.rand(features.shape, generator=generator) >= dropout).float() / (1.0 - dropout)
        samples.append(torch.softmax(head(features * keep) / temperature, dim=1))
    return torch.stack(samples).double().numpy()


@torch.inference_mode()
def member_probabilities(members: list[torch.nn.Module], batches: list[np.ndarray], temperature: float) -> np.ndarray:
    """M x N x C softmax outputs of each ensemble member (the deployable's temperature applied to each)."""
    out = []
    for model in members:
        model.eval()
        logits = torch.cat([model(torch.from_numpy(b)) for b in batches])
        out.append(torch.softmax(logits / temperature, dim=1))
    return torch.stack(out).double().numpy()


def agreed(guesses: list[Guess], members: list[tuple[np.ndarray, np.ndarray]], classes: list[str],
           iou: float = 0.5) -> list[Guess]:
    """The ensemble as annotator: the deployable's boxes that at least half of the members also found (same
    class, IoU >= `iou`)."""
    kept = []
    for guess in guesses:
        votes = 0
        for boxes, labels in members:
            same = np.array([classes[int(label)] == guess.label for label in labels], bool)
            votes += bool(len(boxes) and ((iou_matrix(np.array([guess.box]), boxes)[0] >= iou) & same).any())
        if votes * 2 >= len(members):
            kept.append(guess)
    return kept
