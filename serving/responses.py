"""The server's side of the task seam: what a task's answer looks like in OIP v2 outputs and V1 JSON.

Torch-free, like the rest of the predictor image. A task registers its response builder in RESPONSES, keyed
like vision.tasks.TASKS; the bundle's `preprocess.json` says which task the model serves.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from kserve import InferOutput

from runtime.artifact import DetectionPrediction, Prediction


class Responses(Protocol):
    names: tuple[str, ...]

    def output_types(self, classes: list[str]) -> list[dict[str, Any]]: ...

    def v2_outputs(self, result: Any, classes: list[str]) -> list[InferOutput]: ...

    def v1_predictions(self, result: Any, classes: list[str]) -> list[dict[str, Any]]: ...


@dataclass(frozen=True)
class ClassificationResponses:
    """A class per image (none when the model abstains), calibrated probabilities, the OOD score."""

    names: tuple[str, ...] = ("label", "probabilities", "ood_score", "abstained")

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


RESPONSES: dict[str, Responses] = {"classification": ClassificationResponses(), "detection": DetectionResponses()}
