"""The server's side of the task seam: what a task's answer looks like in OIP v2 outputs and V1 JSON.

Torch-free, like the rest of the predictor image. A task registers its response builder in RESPONSES, keyed
like vision.tasks.TASKS; the bundle's `preprocess.json` says which task the model serves.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from kserve import InferOutput
from kserve.errors import InvalidInput

from runtime.artifact import Artifact, DetectionPrediction, DetectionRequest, Prediction, TagPrediction
from runtime.cascade import CascadeArtifact, CascadePrediction

if TYPE_CHECKING:  # capture is opt-in: its module loads only in a server that captures
    from serving.capture import CaptureSettings

Answer = Prediction | DetectionPrediction | TagPrediction | CascadePrediction
Capture = tuple[str | None, dict[str, Any]]
"""Why one image is worth capturing (None: it is not) and what its record shows of the answer."""


class Responses(Protocol):
    names: tuple[str, ...]

    def needs_full_images(self, artifact: Any) -> bool:
        """Whether `answer` needs the request's images at full size (a tiled detector's tiles, a cascade's
        crops), not only the network's input."""

    def answer(self, artifact: Artifact, tensor: np.ndarray, sizes: list[tuple[int, int]] | None,
               request: DetectionRequest | None, full: list[np.ndarray] | None = None) -> Any:
        """`full`: a tiled detector's images at full size (it cuts them into tiles); None for any other model."""

    def capture(self, result: Any, index: int, classes: list[str], request: DetectionRequest | None,
                settings: CaptureSettings) -> Capture: ...

    def output_types(self, classes: list[str]) -> list[dict[str, Any]]: ...

    def v2_outputs(self, result: Any, classes: list[str]) -> list[InferOutput]: ...

    def v1_predictions(self, result: Any, classes: list[str]) -> list[dict[str, Any]]: ...


@dataclass(frozen=True)
class ClassificationResponses:
    """A class per image (none when the model abstains), calibrated probabilities, the OOD score."""

    names: tuple[str, ...] = ("label", "probabilities", "ood_score", "abstained")

    def needs_full_images(self, artifact: Artifact) -> bool:
        return False

    def answer(self, artifact: Artifact, tensor: np.ndarray, sizes: list[tuple[int, int]] | None,
               request: DetectionRequest | None, full: list[np.ndarray] | None = None) -> Prediction:
        return artifact.predict(tensor)

    def capture(self, result: Prediction, index: int, classes: list[str], request: DetectionRequest | None,
                settings: CaptureSettings) -> Capture:
        from serving.capture import classification_reason

        probabilities = result.probabilities[index]
        top = np.argsort(-probabilities)[:5]
        return (classification_reason(probabilities, bool(result.abstained[index]), settings),
                {"scores": {classes[int(i)]: round(float(probabilities[i]), 4) for i in top}})

    def output_types(self, classes: list[str]) -> list[dict[str, Any]]:
        return [{"name": "label", "datatype": "BYTES", "shape": [-1]},
                {"name": "probabilities", "datatype": "FP32", "shape": [-1, len(classes)]},
                {"name": "ood_score", "datatype": "FP32", "shape": [-1]},
                {"name": "abstained", "datatype": "BOOL", "shape": [-1]}]

    def v2_outputs(self, result: Prediction, classes: list[str]) -> list[InferOutput]:
        count = len(result.labels)
        return [InferOutput("label", [count], "BYTES", [label or "" for label in result.labels]),
                InferOutput("probabilities", list(result.probabilities.shape), "FP32",
                            result.probabilities.ravel().tolist()),
                InferOutput("ood_score", [count], "FP32", result.ood_scores.tolist()),
                InferOutput("abstained", [count], "BOOL", [bool(a) for a in result.abstained])]

    def v1_predictions(self, result: Prediction, classes: list[str]) -> list[dict[str, Any]]:
        return [{"label": label, "top_class": top, "abstained": bool(abstained), "ood_score": float(score),
                 "probabilities": dict(zip(classes, (float(p) for p in probabilities), strict=True))}
                for label, top, probabilities, score, abstained in zip(
                    result.labels, result.top_class, result.probabilities, result.ood_scores, result.abstained,
                    strict=True)]


@dataclass(frozen=True)
class DetectionResponses:
    """Every image's boxes (xyxy in its own pixels), calibrated scores and classes, concatenated image after
    image; `detections_per_image` says how many belong to each, so a batch of one reads as plain [N, 4] boxes.
    An image the model abstains on gets no boxes."""

    names: tuple[str, ...] = ("boxes", "scores", "labels", "label_names", "detections_per_image", "ood_score",
                              "abstained")

    def needs_full_images(self, artifact: Artifact) -> bool:
        return artifact.tiled

    def answer(self, artifact: Artifact, tensor: np.ndarray, sizes: list[tuple[int, int]] | None,
               request: DetectionRequest | None, full: list[np.ndarray] | None = None) -> DetectionPrediction:
        return artifact.detect(tensor, sizes, request, full)

    def capture(self, result: DetectionPrediction, index: int, classes: list[str], request: DetectionRequest | None,
                settings: CaptureSettings) -> Capture:
        from serving.capture import detection_reason

        assert request is not None  # a detector's request always has its settings
        found = result.detections[index]
        return (detection_reason(found.scores, bool(result.abstained[index]), request.score_threshold, settings),
                {"detections": [[classes[int(label)], round(float(score), 4)]
                                for label, score in list(zip(found.labels, found.scores, strict=True))[:20]]})

    def output_types(self, classes: list[str]) -> list[dict[str, Any]]:
        return [{"name": "boxes", "datatype": "FP32", "shape": [-1, 4]},
                {"name": "scores", "datatype": "FP32", "shape": [-1]},
                {"name": "labels", "datatype": "INT64", "shape": [-1]},
                {"name": "label_names", "datatype": "BYTES", "shape": [-1]},
                {"name": "detections_per_image", "datatype": "INT64", "shape": [-1]},
                {"name": "ood_score", "datatype": "FP32", "shape": [-1]},
                {"name": "abstained", "datatype": "BOOL", "shape": [-1]}]

    def v2_outputs(self, result: DetectionPrediction, classes: list[str]) -> list[InferOutput]:
        found = result.detections
        boxes = [float(v) for d in found for v in d.boxes.reshape(-1)]
        total, count = sum(len(d) for d in found), len(found)
        return [InferOutput("boxes", [total, 4], "FP32", boxes),
                InferOutput("scores", [total], "FP32", [float(v) for d in found for v in d.scores]),
                InferOutput("labels", [total], "INT64", [int(v) for d in found for v in d.labels]),
                InferOutput("label_names", [total], "BYTES", [classes[int(v)] for d in found for v in d.labels]),
                InferOutput("detections_per_image", [count], "INT64", [len(d) for d in found]),
                InferOutput("ood_score", [count], "FP32", result.ood_scores.tolist()),
                InferOutput("abstained", [count], "BOOL", [bool(a) for a in result.abstained])]

    def v1_predictions(self, result: DetectionPrediction, classes: list[str]) -> list[dict[str, Any]]:
        return [{"abstained": bool(abstained), "ood_score": float(score),
                 "detections": [{"box": [float(v) for v in box], "score": float(conf), "label": int(label),
                                 "label_name": classes[int(label)]}
                                for box, conf, label in zip(found.boxes, found.scores, found.labels, strict=True)]}
                for found, score, abstained in zip(result.detections, result.ood_scores, result.abstained,
                                                   strict=True)]


@dataclass(frozen=True)
class TaggingResponses:
    """Every image's tags above their thresholds, concatenated image after image (`tags_per_image` says how many
    belong to each), every tag's calibrated probability and the thresholds on that scale, the OOD score. An image
    the model abstains on gets no tags."""

    names: tuple[str, ...] = ("tags", "tags_per_image", "probabilities", "thresholds", "ood_score", "abstained")

    def needs_full_images(self, artifact: Artifact) -> bool:
        return False

    def answer(self, artifact: Artifact, tensor: np.ndarray, sizes: list[tuple[int, int]] | None,
               request: DetectionRequest | None, full: list[np.ndarray] | None = None) -> TagPrediction:
        return artifact.tag(tensor)

    def capture(self, result: TagPrediction, index: int, classes: list[str], request: DetectionRequest | None,
                settings: CaptureSettings) -> Capture:
        from serving.capture import tagging_reason

        probabilities = result.probabilities[index]
        return (tagging_reason(probabilities, result.thresholds, bool(result.abstained[index]), settings),
                {"tags": result.tags[index],
                 "scores": {tag: round(float(p), 4) for tag, p in zip(classes, probabilities, strict=True)}})

    def output_types(self, classes: list[str]) -> list[dict[str, Any]]:
        return [{"name": "tags", "datatype": "BYTES", "shape": [-1]},
                {"name": "tags_per_image", "datatype": "INT64", "shape": [-1]},
                {"name": "probabilities", "datatype": "FP32", "shape": [-1, len(classes)]},
                {"name": "thresholds", "datatype": "FP32", "shape": [len(classes)]},
                {"name": "ood_score", "datatype": "FP32", "shape": [-1]},
                {"name": "abstained", "datatype": "BOOL", "shape": [-1]}]

    def v2_outputs(self, result: TagPrediction, classes: list[str]) -> list[InferOutput]:
        count, found = len(result.tags), [tag for tags in result.tags for tag in tags]
        return [InferOutput("tags", [len(found)], "BYTES", found),
                InferOutput("tags_per_image", [count], "INT64", [len(t) for t in result.tags]),
                InferOutput("probabilities", list(result.probabilities.shape), "FP32",
                            result.probabilities.ravel().tolist()),
                InferOutput("thresholds", [len(classes)], "FP32", result.thresholds.tolist()),
                InferOutput("ood_score", [count], "FP32", result.ood_scores.tolist()),
                InferOutput("abstained", [count], "BOOL", [bool(a) for a in result.abstained])]

    def v1_predictions(self, result: TagPrediction, classes: list[str]) -> list[dict[str, Any]]:
        thresholds = dict(zip(classes, (float(t) for t in result.thresholds), strict=True))
        return [{"tags": tags, "abstained": bool(abstained), "ood_score": float(score),
                 "probabilities": dict(zip(classes, (float(p) for p in probabilities), strict=True)),
                 "thresholds": thresholds}
                for tags, probabilities, score, abstained in zip(result.tags, result.probabilities, result.ood_scores,
                                                                 result.abstained, strict=True)]


@dataclass(frozen=True)
class CascadeResponses:
    """A cascade's boxes, concatenated image after image as a detector's (`detections_per_image`): each box with
    the detector's class and score (`coarse_labels`, `coarse_scores`), the classifier's fine class and its
    probability (`labels`, `fine_scores`; an empty label where the classifier abstained on the crop) and their
    product (`scores`); an image the detector abstains on gets no boxes."""

    names: tuple[str, ...] = ("boxes", "scores", "labels", "fine_scores", "coarse_labels", "coarse_scores",
                              "detections_per_image", "ood_score", "abstained")

    def needs_full_images(self, artifact: CascadeArtifact) -> bool:
        return True

    def answer(self, artifact: CascadeArtifact, tensor: np.ndarray, sizes: list[tuple[int, int]] | None,
               request: DetectionRequest | None, full: list[np.ndarray] | None = None) -> CascadePrediction:
        if full is None or sizes is None:
            raise InvalidInput("a cascade crops its detections from the images: send encoded images (BYTES) or "
                               "uint8 pixels, not normalised FP32")
        return artifact.answer(tensor, sizes, full, request)

    def capture(self, result: CascadePrediction, index: int, classes: list[str], request: DetectionRequest | None,
                settings: CaptureSettings) -> Capture:
        from serving.capture import detection_reason

        assert request is not None  # a cascade's request always has its detector's settings
        answer = result.answers[index]
        scores = np.asarray([box.score for box in answer.boxes], np.float32)
        return (detection_reason(scores, answer.abstained, request.score_threshold, settings),
                {"detections": [[box.coarse, box.fine or "", round(box.score, 4)] for box in answer.boxes[:20]]})

    def output_types(self, classes: list[str]) -> list[dict[str, Any]]:
        return [{"name": "boxes", "datatype": "FP32", "shape": [-1, 4]},
                {"name": "scores", "datatype": "FP32", "shape": [-1]},
                {"name": "labels", "datatype": "BYTES", "shape": [-1]},
                {"name": "fine_scores", "datatype": "FP32", "shape": [-1]},
                {"name": "coarse_labels", "datatype": "BYTES", "shape": [-1]},
                {"name": "coarse_scores", "datatype": "FP32", "shape": [-1]},
                {"name": "detections_per_image", "datatype": "INT64", "shape": [-1]},
                {"name": "ood_score", "datatype": "FP32", "shape": [-1]},
                {"name": "abstained", "datatype": "BOOL", "shape": [-1]}]

    def v2_outputs(self, result: CascadePrediction, classes: list[str]) -> list[InferOutput]:
        boxes = [box for answer in result.answers for box in answer.boxes]
        total, count = len(boxes), len(result.answers)
        return [InferOutput("boxes", [total, 4], "FP32", [float(v) for box in boxes for v in box.box]),
                InferOutput("scores", [total], "FP32", [box.score for box in boxes]),
                InferOutput("labels", [total], "BYTES", [box.fine or "" for box in boxes]),
                InferOutput("fine_scores", [total], "FP32", [box.fine_score for box in boxes]),
                InferOutput("coarse_labels", [total], "BYTES", [box.coarse for box in boxes]),
                InferOutput("coarse_scores", [total], "FP32", [box.coarse_score for box in boxes]),
                InferOutput("detections_per_image", [count], "INT64", [len(a.boxes) for a in result.answers]),
                InferOutput("ood_score", [count], "FP32", result.ood_scores.tolist()),
                InferOutput("abstained", [count], "BOOL", [bool(a) for a in result.abstained])]

    def v1_predictions(self, result: CascadePrediction, classes: list[str]) -> list[dict[str, Any]]:
        return [{"abstained": answer.abstained, "ood_score": answer.ood_score,
                 "detections": [{"box": list(box.box), "score": box.score, "label": box.fine,
                                 "fine_score": box.fine_score, "coarse_label": box.coarse,
                                 "coarse_score": box.coarse_score} for box in answer.boxes]}
                for answer in result.answers]


RESPONSES: dict[str, Responses] = {"classification": ClassificationResponses(), "detection": DetectionResponses(),
                                   "multilabel": TaggingResponses(), "cascade": CascadeResponses()}
