"""The KServe model: requests in V1 or Open Inference Protocol v2 form -> calibrated classes or "I don't know".

Inputs, V2 (`/v2/models/<name>/infer`): one tensor, either encoded images
(`BYTES`, shape [N], base64 strings), uint8 pixels (`UINT8`, [N, H, W, 3]), or
already normalised floats (`FP32`, [N, 3, S, S]). V1 (`/v1/models/<name>:predict`):
`{"instances": [{"b64": "..."}, ...]}` or nested lists of uint8 pixels.
Outputs: the class (none when the model abstains), calibrated probabilities,
the OOD score and whether the model abstained. Anything malformed is an
InvalidInput, which KServe answers with a 400 and a JSON error.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from typing import Any

import numpy as np
from kserve import InferOutput, InferRequest, InferResponse, Model
from kserve.errors import InvalidInput

from serving.artifact import Artifact, BadImage, Prediction

MAX_BATCH = 256


class VisionModel(Model):
    def __init__(self, name: str, artifact: Artifact):
        super().__init__(name)
        self.artifact = artifact
        self.ready = True  # the artifact is loaded before the server starts

    def load(self) -> bool:
        self.ready = True
        return self.ready

    async def predict(self, payload: dict | InferRequest, headers: dict[str, str] | None = None,
                      response_headers: dict[str, str] | None = None) -> dict | InferResponse:
        if isinstance(payload, InferRequest):
            tensor = self._v2_tensor(payload)
            return self._v2_response(payload, self.artifact.predict(tensor))
        if not isinstance(payload, dict) or not isinstance(payload.get("instances"), list):
            raise InvalidInput('a V1 request is {"instances": [...]}')
        return self._v1_response(self.artifact.predict(self._v1_tensor(payload["instances"])))

    # -- inputs --------------------------------------------------------------------------------------------

    def _images_from_bytes(self, items: list[Any]) -> np.ndarray:
        images = []
        for index, item in enumerate(items):
            data = item.encode("ascii", "replace") if isinstance(item, str) else item
            if not isinstance(data, bytes | bytearray):
                raise InvalidInput(f"input {index}: expected base64-encoded image bytes")
            try:
                raw = base64.b64decode(data, validate=True)
            except (binascii.Error, ValueError):
                raise InvalidInput(f"input {index}: not valid base64") from None
            try:
                images.append(self.artifact.decode(raw))
            except BadImage as exc:
                raise InvalidInput(f"input {index}: {exc}") from None
        return np.stack(images)

    def _pixels(self, array: np.ndarray) -> np.ndarray:
        if array.ndim != 4 or array.shape[-1] != 3 or min(array.shape[1:3]) < 1:
            raise InvalidInput(f"uint8 pixels must be N x H x W x 3 (got shape {list(array.shape)})")
        return self.artifact.normalise(np.ascontiguousarray(array, dtype=np.uint8))

    def _check_batch(self, count: int) -> None:
        if not 1 <= count <= MAX_BATCH:
            raise InvalidInput(f"a request holds 1 to {MAX_BATCH} images (got {count})")

    def _v2_tensor(self, request: InferRequest) -> np.ndarray:
        if len(request.inputs) != 1:
            raise InvalidInput(f"expected exactly one input tensor (got {len(request.inputs)})")
        tensor = request.inputs[0]
        size = self.artifact.size_px
        try:
            array = tensor.as_numpy()
        except (ValueError, TypeError) as exc:
            raise InvalidInput(f"input '{tensor.name}': data does not match shape {tensor.shape} and datatype "
                               f"{tensor.datatype} ({exc})") from None
        self._check_batch(int(array.shape[0]) if array.ndim else 0)
        if tensor.datatype == "BYTES":
            if array.ndim != 1:
                raise InvalidInput(f"BYTES input must have shape [N] (got {list(array.shape)})")
            return self.artifact.normalise(self._images_from_bytes(list(array)))
        if tensor.datatype == "UINT8":
            return self._pixels(array)
        if tensor.datatype == "FP32":
            if array.shape[1:] != (3, size, size):
                raise InvalidInput(f"FP32 input must be normalised N x 3 x {size} x {size} (got {list(array.shape)})")
            if not np.isfinite(array).all():
                raise InvalidInput("FP32 input holds NaN or infinite values")
            return array.astype(np.float32)
        raise InvalidInput(f"unsupported datatype {tensor.datatype}: send BYTES (encoded images), UINT8 pixels "
                           "or normalised FP32")

    def _v1_tensor(self, instances: list[Any]) -> np.ndarray:
        self._check_batch(len(instances))
        if all(isinstance(i, dict) for i in instances):
            encoded = [(i.get("image_bytes") or i).get("b64") if isinstance(i.get("image_bytes") or i, dict)
                       else None for i in instances]
            if any(e is None for e in encoded):
                raise InvalidInput('each instance is {"b64": "<base64 image>"} or {"image_bytes": {"b64": ...}}')
            return self.artifact.normalise(self._images_from_bytes(encoded))
        try:
            array = np.asarray(instances)
        except ValueError:
            raise InvalidInput("instances must all have the same shape") from None
        if array.dtype.kind not in "iuf" or array.size == 0 or array.min() < 0 or array.max() > 255:
            raise InvalidInput("pixel instances must be numbers 0..255 in H x W x 3 lists")
        return self._pixels(array)

    # -- outputs -------------------------------------------------------------------------------------------

    def _v2_response(self, request: InferRequest, result: Prediction) -> InferResponse:
        count = len(result.labels)
        outputs = [
            InferOutput("label", [count], "BYTES", [label or "" for label in result.labels]),
            InferOutput("probabilities", list(result.probabilities.shape), "FP32",
                        result.probabilities.ravel().tolist()),
            InferOutput("ood_score", [count], "FP32", result.ood_scores.tolist()),
            InferOutput("abstained", [count], "BOOL", [bool(a) for a in result.abstained]),
        ]
        return InferResponse(request.id or str(uuid.uuid4()), self.name, outputs,
                             parameters={"classes": ",".join(self.artifact.classes)})

    def _v1_response(self, result: Prediction) -> dict[str, Any]:
        return {"predictions": [
            {"label": label, "top_class": top, "abstained": bool(abstained), "ood_score": float(score),
             "probabilities": dict(zip(self.artifact.classes, (float(p) for p in probabilities), strict=True))}
            for label, top, probabilities, score, abstained in zip(
                result.labels, result.top_class, result.probabilities, result.ood_scores, result.abstained,
                strict=True)]}
