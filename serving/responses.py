"""The server's side of the task seam: what a task's answer looks like in OIP v2 outputs and V1 JSON.

Torch-free, like the rest of the predictor image. A task registers its response builder in RESPONSES, keyed
like vision.tasks.TASKS; the bundle's `preprocess.json` says which task the model serves.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from kserve import InferOutput

from serving.artifact import Prediction


class Responses(Protocol):
    names: tuple[str, ...]

    def output_types(self, classes: list[str]) -> list[dict[str, Any]]: ...

    def v2_outputs(self, result: Prediction) -> list[InferOutput]: ...

    def v1_predictions(self, result: Prediction, classes: list[str]) -> list[dict[str, Any]]: ...


@dataclass(frozen=True)
class ClassificationResponses:
    """A class per image (none when the model abstains), calibrated probabilities, the OOD score."""

    names: tuple[str, ...] = ("label", "probabilities", "ood_score", "abstained")

    def output_types(self, classes: list[str]) -> list[dict[str, Any]]:
        return [{"name": "label", "datatype": "BYTES", "shape": [-1]},
                {"name": "probabilities", "datatype": "FP32", "shape": [-1, len(classes)]},
                {"name": "ood_score", "datatype": "FP32", "shape": [-1]},
                {"name": "abstained", "datatype": "BOOL", "shape": [-1]}]

    def v2_outputs(self, result: Prediction) -> list[InferOutput]:
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


RESPONSES: dict[str, Responses] = {"classification": ClassificationResponses()}
