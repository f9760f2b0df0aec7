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
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image

from runtime.bundle import MODEL_FILE, PREPROCESS_FILE, SERVING_FILE, Preprocessing, ServingSettings
from runtime.detections import Decoding, Detections, Letterbox, detect
from runtime.images import BadImage, PixelLimits, declared_size, decode_rgb
from runtime.ood import mahalanobis_terms, ood_score, softmax
from runtime.tiling import Outputs, fitted, sliced_detect

__all__ = ["Artifact", "BadImage", "DetectionPrediction", "DetectionSettings", "PixelLimits", "Prediction",
           "TagPrediction"]

EPSILON = 1e-6

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
    features: np.ndarray | None = None
    """The pooled features the OOD detector read (N x D)."""


@dataclass
class TagPrediction:
    """Per image: the tags whose probability passes their threshold (none where the model abstained), every
    tag's temperature-calibrated probability (N x tags), the thresholds in that same calibrated scale, the OOD
    score and the abstain decision."""

    tags: list[list[str]]
    probabilities: np.ndarray
    thresholds: np.ndarray
    ood_scores: np.ndarray
    abstained: np.ndarray
    features: np.ndarray | None = None
    present: np.ndarray | None = None
    """N x tags: each tag's decision before abstention (the data loop pre-labels abstained images too)."""


@dataclass
class DetectionPrediction:
    """Per image: detections in the original image's pixels (none where the model abstained), best first, with
    temperature-calibrated scores; the image-level OOD score and the abstain decision."""

    detections: list[Detections]
    ood_scores: np.ndarray
    abstained: np.ndarray


@dataclass(frozen=True)
class DetectionSettings:
    """From `preprocess.json`: the detector's input and decoding; `confidence_threshold` is the default minimum
    calibrated score a response holds."""

    input_wh: tuple[int, int]
    decoding: Decoding
    confidence_threshold: float

    @classmethod
    def from_dict(cls, raw: dict) -> DetectionSettings:
        input_wh = (int(raw["input_wh"][0]), int(raw["input_wh"][1]))
        decoding = Decoding.from_dict(raw, input_wh, tuple(int(s) for s in raw["strides"]))
        return cls(input_wh, decoding, float(raw["confidence_threshold"]))


@dataclass(frozen=True)
class DetectionRequest:
    """What one request may change, each already checked within the server's limits."""

    score_threshold: float
    nms_iou: float
    max_detections: int


def letterboxed(rgb: Image.Image, input_wh: tuple[int, int]) -> np.ndarray:
    """The image scaled to fit `input_wh` (bilinear), aspect kept, padded right and bottom: as training fed it."""
    return fitted(np.asarray(rgb, dtype=np.uint8), input_wh)[0]


def calibrated(scores: np.ndarray, temperature: float) -> np.ndarray:
    """Temperature scaling of detection scores in logit space (the dependability stage fitted the temperature)."""
    p = np.clip(np.asarray(scores, np.float64), EPSILON, 1 - EPSILON)
    return 1.0 / (1.0 + np.exp(-np.log(p / (1 - p)) / temperature))


def _raw_threshold(calibrated: float, temperature: float) -> float:
    """The raw score whose calibrated value is `calibrated` (calibration is monotonic)."""
    p = min(max(calibrated, EPSILON), 1 - EPSILON)
    return float(1.0 / (1.0 + np.exp(-np.log(p / (1 - p)) * temperature)))


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
    detection: DetectionSettings | None = None
    members: list[ort.InferenceSession] = field(default_factory=list)
    """The ensemble's members (ONNX files shipped in the OOD state) when the OOD detector is `ensemble`."""
    thresholds: np.ndarray | None = None
    """A tagger's per-tag decision thresholds on the uncalibrated sigmoid (chosen on validation, shipped in
    `preprocess.json`)."""

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
        if preprocess.thresholds is not None:  # a tagger: each tag's decision threshold
            artifact.thresholds = np.asarray(preprocess.thresholds, np.float64)
        if preprocess.detection is not None:  # a detector: how to letterbox and decode
            artifact.detection = DetectionSettings.from_dict(preprocess.detection or {})
            artifact.outputs = ("class_logits", "box_regression", "centerness", preprocess.features_name)
        serving_file = _find(folders, SERVING_FILE, required=False)
        if serving_file is not None:
            serving = ServingSettings.from_dict(json.loads(serving_file.read_text(encoding="utf-8")))
            artifact.temperature, artifact.detector = serving.temperature, serving.ood.detector
            artifact.threshold = float(serving.ood.threshold)
            artifact.state = {name: np.load(serving_file.parent / path) for name, path in serving.ood.state.items()}
            if artifact.detector == "mahalanobis":
                artifact.state.update(mahalanobis_terms(artifact.state))
            if artifact.detector == "ensemble":
                artifact.members = [ort.InferenceSession(artifact.state[name].tobytes(), options, providers=providers)
                                    for name in sorted(artifact.state) if name.startswith("member")]
        return artifact

    def decode(self, data: bytes) -> Image.Image:
        """Encoded image bytes -> the RGB image, decoded as ingest decodes (deep images rescaled, size checked
        before decoding); `fit` then fits it to the model's input."""
        width, height = declared_size(data)
        self.limits.check(width, height)
        if width * height > LARGE_IMAGE_PIXELS:
            with _large_decodes:
                return decode_rgb(data, self.limits)
        return decode_rgb(data, self.limits)

    @property
    def tiled(self) -> bool:
        """A detector that detects tile by tile on the full-size image (the spec's `detection.tiling`)."""
        return self.detection is not None and self.detection.decoding.tiling is not None

    def fit(self, rgb: Image.Image) -> np.ndarray:
        """The image as training read it: a classifier's square (bicubic), a detector's letterbox."""
        if self.detection is not None:
            return letterboxed(rgb, self.detection.input_wh)
        if rgb.size != (self.size_px, self.size_px):
            rgb = rgb.resize((self.size_px, self.size_px), Image.Resampling.BICUBIC)
        return np.asarray(rgb, dtype=np.uint8)

    def input_hw(self) -> tuple[int, int]:
        """The network input's height and width."""
        if self.detection is not None:
            return self.detection.input_wh[1], self.detection.input_wh[0]
        return self.size_px, self.size_px

    def normalise(self, images: np.ndarray) -> np.ndarray:
        """uint8 N x H x W x 3 -> the float N x 3 x H x W the network takes (resized or letterboxed to fit)."""
        if images.shape[1:3] != self.input_hw() and self.detection is not None:
            images = np.stack([self.fit(Image.fromarray(i)) for i in images])
        if images.shape[1:3] != self.input_hw():
            images = np.stack([np.asarray(Image.fromarray(i).resize((self.size_px, self.size_px),
                                                                    Image.Resampling.BICUBIC)) for i in images])
        x = images.transpose(0, 3, 1, 2).astype(np.float32) / 255.0
        return (x - self.mean) / self.std

    def detect(self, tensor: np.ndarray, sizes: list[tuple[int, int]] | None,
               request: DetectionRequest | None = None, images: list[np.ndarray] | None = None
               ) -> DetectionPrediction:
        """Normalised N x 3 x H x W -> each image's detections (in its own pixels when `sizes` gives each image's
        width and height, else in input pixels) with calibrated scores, its OOD score and the abstain decision.
        A tiled detector given the full-size `images` (uint8 H x W x 3) detects tile by tile (runtime.tiling) and
        reads the OOD score from the whole image, as the dependability stage measured it."""
        assert self.detection is not None
        settings = request or self.default_request()
        decoding = replace(self.detection.decoding, score_threshold=max(
            self.detection.decoding.score_threshold, _raw_threshold(settings.score_threshold, self.temperature)),
            nms_iou=settings.nms_iou, max_detections=settings.max_detections)
        logits, regression, centerness, features = self._raw(tensor)
        # a detector's OOD detectors read the pooled features only (vision.detection.ood): no image-level logits
        scores = ood_score(self.detector, np.zeros((len(tensor), 1), np.float32), features, self.state)
        abstained = (scores > self.threshold) if self.abstain_on_ood else np.zeros(len(scores), bool)
        found = []
        for i in range(len(tensor)):
            if abstained[i]:
                found.append(Detections(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64)))
                continue
            if images is not None and decoding.tiling is not None:
                own = sliced_detect(images[i], lambda batch: self._raw(self.normalise(batch)), decoding,
                                    whole=(logits[i], regression[i], centerness[i], features[i])).found
            else:
                fit = Letterbox.fit(*sizes[i], self.detection.input_wh) if sizes else None
                own = detect(logits[i], regression[i], centerness[i], decoding, fit)
            confidence = calibrated(own.scores, self.temperature).astype(np.float32)
            keep = confidence >= settings.score_threshold
            found.append(Detections(own.boxes[keep], confidence[keep], own.labels[keep]))
        return DetectionPrediction(found, scores.astype(np.float32), abstained)

    def _raw(self, tensor: np.ndarray) -> Outputs:
        """A detector's raw outputs (class logits, box regression, centerness, pooled features) for a normalised
        batch."""
        input_type = self.session.get_inputs()[0].type
        feed = tensor.astype(np.float16 if "float16" in input_type else np.float32)
        logits, regression, centerness, features = (
            np.asarray(o, np.float32) for o in self.session.run(list(self.outputs), {self.input_name: feed}))
        return logits, regression, centerness, features

    def default_request(self) -> DetectionRequest:
        assert self.detection is not None
        return DetectionRequest(self.detection.confidence_threshold, self.detection.decoding.nms_iou,
                                self.detection.decoding.max_detections)

    def _image_outputs(self, tensor: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """An image-level model's logits and features, its OOD scores and the abstain decisions."""
        input_type = self.session.get_inputs()[0].type
        feed = tensor.astype(np.float16 if "float16" in input_type else np.float32)
        logits, features = (np.asarray(o, np.float32) for o in self.session.run(list(self.outputs),
                                                                               {self.input_name: feed}))
        members = np.stack([np.asarray(m.run([self.outputs[0]], {self.input_name: tensor.astype(np.float32)})[0],
                                       np.float32) for m in self.members]) if self.members else None
        scores = ood_score(self.detector, logits, features, self.state, members)
        abstained = (scores > self.threshold) if self.abstain_on_ood else np.zeros(len(scores), bool)
        return logits, features, scores, abstained

    def tag(self, tensor: np.ndarray) -> TagPrediction:
        """Normalised N x 3 x S x S -> each image's tags above their thresholds, calibrated probabilities, OOD
        score and the abstain decision. A tag is given when its uncalibrated sigmoid exceeds the threshold chosen
        on it; calibration is monotonic, so the calibrated probability exceeds the calibrated threshold
        reported beside it exactly then."""
        assert self.thresholds is not None, "a tagger's bundle carries its thresholds"
        logits, features, scores, abstained = self._image_outputs(tensor)
        raw = 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))
        present = raw > self.thresholds[None, :]
        tags = [[] if abstained[i] else [self.classes[j] for j in np.flatnonzero(present[i])]
                for i in range(len(logits))]
        probabilities = 1.0 / (1.0 + np.exp(-logits.astype(np.float64) / self.temperature))
        return TagPrediction(tags, probabilities.astype(np.float32),
                             calibrated(self.thresholds, self.temperature).astype(np.float32),
                             scores.astype(np.float32), abstained, features, present)

    def predict(self, tensor: np.ndarray) -> Prediction:
        """Normalised N x 3 x S x S -> calibrated probabilities, OOD score and the abstain decision."""
        logits, features, scores, abstained = self._image_outputs(tensor)
        probabilities = softmax(logits.astype(np.float64) / self.temperature)
        top = [self.classes[i] for i in logits.argmax(axis=1)]
        return Prediction([None if a else t for t, a in zip(top, abstained, strict=True)], top,
                          probabilities.astype(np.float32), scores.astype(np.float32), abstained, features)
