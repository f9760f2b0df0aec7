"""The deployable artifact as the server sees it: ONNX file, preprocessing, calibration and OOD state.

The export stage writes `model.onnx` + `preprocess.json`; the dependability stage
writes `serving.json` (temperature, OOD detector, threshold) and the detector's
fitted arrays. The server takes one or more folders and finds each file in the
first folder that has it, so it runs on a promoted bundle (one folder) or on a
local pipeline's two output folders alike.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image

from core.bundle import MODEL_FILE, PREPROCESS_FILE, SERVING_FILE, Preprocessing, ServingSettings
from serving.ood import mahalanobis_terms, ood_score, softmax
from vision.data.decode import BadImage, PixelLimits, declared_size, decode_rgb

__all__ = ["Artifact", "BadImage", "PixelLimits", "Prediction"]

LARGE_IMAGE_PIXELS = 4_000_000
"""Images above this many pixels decode one at a time per server process, so concurrent requests cannot
multiply the memory of the largest allowed image."""
_large_decodes = threading.BoundedSemaphore(1)


def _find(folders: list[Path], name: str, required: bool = True) -> Path | None:
    for folder in folders:
        if (folder / name).is_file():
            return folder / name
    if required:
        raise FileNotFoundError(f"{name} is in none of {', '.join(map(str, folders))}")
    return None


@dataclass
class Prediction:
    labels: list[str | None]
    """Class name per image; None where the model abstained."""
    top_class: list[str]
    probabilities: np.ndarray
    """Temperature-calibrated, N x classes."""
    ood_scores: np.ndarray
    abstained: np.ndarray


@dataclass
class Artifact:
    classes: list[str]
    size_px: int
    mean: np.ndarray
    std: np.ndarray
    session: ort.InferenceSession
    temperature: float = 1.0
    detector: str = "msp"
    threshold: float = float("inf")
    state: dict[str, np.ndarray] = field(default_factory=dict)
    abstain_on_ood: bool = True
    version: str = "1"
    """`sha256-<first 12 hex digits>` of the ONNX file: the one model version this server serves."""
    input_name: str = "input"
    outputs: tuple[str, str] = ("logits", "features")
    limits: PixelLimits = field(default_factory=PixelLimits)
    task: str = "classification"

    @classmethod
    def load(cls, folders: list[Path], threads: int = 1, abstain_on_ood: bool = True,
             limits: PixelLimits | None = None) -> Artifact:
        preprocess = Preprocessing.from_dict(json.loads(_find(folders, PREPROCESS_FILE).read_text(encoding="utf-8")))
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        options.log_severity_level = 3
        wanted = [preprocess.execution_provider, "CPUExecutionProvider"]
        providers = [p for p in dict.fromkeys(wanted) if p in ort.get_available_providers()]
        model_file = _find(folders, MODEL_FILE)
        session = ort.InferenceSession(str(model_file), options, providers=providers)
        artifact = cls(list(preprocess.classes), int(preprocess.input_size_px),
                       np.asarray(preprocess.mean, np.float32).reshape(1, 3, 1, 1),
                       np.asarray(preprocess.std, np.float32).reshape(1, 3, 1, 1), session,
                       abstain_on_ood=abstain_on_ood, input_name=preprocess.input_name,
                       outputs=(preprocess.output_name, preprocess.features_name),
                       version="sha256-" + hashlib.sha256(model_file.read_bytes()).hexdigest()[:12],
                       limits=limits or PixelLimits(), task=preprocess.task)
        serving_file = _find(folders, SERVING_FILE, required=False)
        if serving_file is not None:
            serving = ServingSettings.from_dict(json.loads(serving_file.read_text(encoding="utf-8")))
            artifact.temperature, artifact.detector = serving.temperature, serving.ood.detector
            artifact.threshold = float(serving.ood.threshold)
            artifact.state = {name: np.load(serving_file.parent / path) for name, path in serving.ood.state.items()}
            if artifact.detector == "mahalanobis":
                artifact.state.update(mahalanobis_terms(artifact.state))
        return artifact

    def decode(self, data: bytes) -> np.ndarray:
        """Encoded image bytes -> uint8 RGB at the model's size, decoded as ingest decodes (deep images
        rescaled, size checked before decoding) and resized as training read its images (bicubic)."""
        width, height = declared_size(data)
        self.limits.check(width, height)
        if width * height > LARGE_IMAGE_PIXELS:
            with _large_decodes:
                rgb = decode_rgb(data, self.limits)
        else:
            rgb = decode_rgb(data, self.limits)
        if rgb.size != (self.size_px, self.size_px):
            rgb = rgb.resize((self.size_px, self.size_px), Image.Resampling.BICUBIC)
        return np.asarray(rgb, dtype=np.uint8)

    def normalise(self, images: np.ndarray) -> np.ndarray:
        """uint8 N x H x W x 3 -> the float N x 3 x S x S the network takes."""
        if images.shape[1:3] != (self.size_px, self.size_px):
            images = np.stack([np.asarray(Image.fromarray(i).resize((self.size_px, self.size_px),
                                                                    Image.Resampling.BICUBIC)) for i in images])
        x = images.transpose(0, 3, 1, 2).astype(np.float32) / 255.0
        return (x - self.mean) / self.std

    def predict(self, tensor: np.ndarray) -> Prediction:
        """Normalised N x 3 x S x S -> calibrated probabilities, OOD score and the abstain decision."""
        input_type = self.session.get_inputs()[0].type
        feed = tensor.astype(np.float16 if "float16" in input_type else np.float32)
        logits, features = (np.asarray(o, np.float32) for o in self.session.run(list(self.outputs),
                                                                               {self.input_name: feed}))
        probabilities = softmax(logits.astype(np.float64) / self.temperature)
        scores = ood_score(self.detector, logits, features, self.state)
        abstained = (scores > self.threshold) if self.abstain_on_ood else np.zeros(len(scores), bool)
        top = [self.classes[i] for i in logits.argmax(axis=1)]
        return Prediction([None if a else t for t, a in zip(top, abstained, strict=True)], top,
                          probabilities.astype(np.float32), scores.astype(np.float32), abstained)
