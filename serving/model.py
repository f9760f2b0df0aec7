"""The KServe model: requests in V1 or Open Inference Protocol v2 form -> calibrated classes or "I don't know".

Inputs, V2 (`/v2/models/<name>/infer`): one tensor, either encoded images
(`BYTES`, shape [N]: base64 strings in JSON, raw or base64 bytes in the binary
extension), uint8 pixels (`UINT8`, [N, H, W, 3]), or already normalised floats
(`FP32`, [N, 3, S, S]). V1 (`/v1/models/<name>:predict`):
`{"instances": [{"b64": "..."}, ...]}` or nested lists of uint8 pixels.
Outputs: the class (none when the model abstains), calibrated probabilities,
the OOD score and whether the model abstained. Anything malformed is an
InvalidInput, which the server answers with a 400 and a short JSON error.

Decoding and inference of anything heavier than a small request run in a bounded
thread pool, never on the event loop: health probes answer while a heavy request runs.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import math
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
from kserve import InferResponse, Model
from kserve.errors import InvalidInput
from kserve.protocol.infer_type import RequestedOutput as KServeRequestedOutput

from runtime.artifact import Artifact, BadImage, DetectionRequest
from runtime.cascade import CascadeArtifact
from runtime.images import declared_size
from serving.protocol import Tensor, TensorRequest
from serving.responses import RESPONSES, Answer

if TYPE_CHECKING:  # capture is opt-in: its module loads only in a server that captures (serving.app)
    from serving.capture import Capturer

MAX_BATCH = 256
HEADER_PEEK_BASE64 = 4 * 16_384
"""Base64 characters (or raw bytes) read to find an image's declared size: 48 KiB of image, ample for the
headers of PNG, GIF, BMP, TIFF and most JPEGs; an image whose size is not found there goes to the pool."""
TILED_REQUEST_PIXELS = 64_000_000
"""Most pixels, all images together, one request to a tiled detector holds at full size (192 MB of RGB)."""
TILED_REQUEST_TILES = 4_096
"""Most tiles one request to a tiled detector may need: bounds its compute (tiny tiles on a huge image)."""
LIGHT_PIXELS = 1_000_000
"""A request whose images declare at most this many pixels in all runs on the event loop: a millisecond of
work, less than the hand-off to a thread costs. Anything heavier goes to the pool."""


class Batch(NamedTuple):
    tensor: np.ndarray
    """The network's normalised input."""
    sizes: list[tuple[int, int]] | None
    """Each image's own width and height where the request sent images (a detector answers in those pixels;
    FP32 input is already the network's, so its boxes are in input pixels)."""
    originals: list[bytes | np.ndarray] | None = None
    """What the client sent per image (encoded bytes, or uint8 pixels), kept only for `serving.capture`."""
    full: list[np.ndarray] | None = None
    """The images at full size (uint8 H x W x 3) where the model needs them: a tiled detector cuts them into tiles,
    a cascade crops its detections from them."""



class VisionModel(Model):
    def __init__(self, name: str, artifact: Artifact | CascadeArtifact, inference_threads: int = 1,
                 capture: Capturer | None = None):
        super().__init__(name)
        self.artifact: Artifact | CascadeArtifact | None = artifact
        self.capture = capture
        self.responses = RESPONSES[artifact.task]
        self.pool = ThreadPoolExecutor(max_workers=inference_threads, thread_name_prefix="inference")
        self.ready = True  # the artifact is loaded before the server starts

    def load(self) -> bool:
        self.ready = self.artifact is not None
        return self.ready

    def validate(self, payload: Any) -> Any:
        """Requests arrive checked (serving.protocol for V2, the handlers below for V1)."""
        return payload

    def unload(self) -> None:
        self.artifact, self.ready = None, False
        self.pool.shutdown(wait=False, cancel_futures=True)

    # -- metadata (OIP v2 model metadata) -------------------------------------------------------------------

    def get_input_types(self) -> list[dict[str, Any]]:
        """The three forms a request may take; each request sends exactly one of them."""
        height, width = self._artifact().input_hw()
        return [{"name": "image", "datatype": "BYTES", "shape": [-1]},
                {"name": "pixels", "datatype": "UINT8", "shape": [-1, -1, -1, 3]},
                {"name": "input", "datatype": "FP32", "shape": [-1, 3, height, width]}]

    def get_output_types(self) -> list[dict[str, Any]]:
        return self.responses.output_types(self._artifact().classes)

    # -- inference ------------------------------------------------------------------------------------------

    async def predict(self, payload: dict | TensorRequest, headers: dict[str, str] | None = None,
                      response_headers: dict[str, str] | None = None) -> dict | InferResponse:
        if isinstance(payload, TensorRequest):
            self._check_outputs(payload)
            prediction = await self._run(self._v2_predict, payload, light=self._light(payload))
            return self._v2_response(payload, prediction)
        if not isinstance(payload, dict) or not isinstance(payload.get("instances"), list):
            raise InvalidInput('a V1 request is {"instances": [...]}')
        return self._v1_response(await self._run(self._v1_predict, payload))

    async def _run(self, work: Any, argument: Any, light: bool = False) -> Answer:
        if light:
            return work(argument)
        return await asyncio.get_running_loop().run_in_executor(self.pool, work, argument)

    def _light(self, request: TensorRequest) -> bool:
        """Whether the request's declared work is small enough for the event loop (see LIGHT_PIXELS). Only
        headers are read; anything that does not parse here is left to the pool, which reports it."""
        if len(request.inputs) != 1:
            return True  # refused at once
        if self._artifact().detection is not None:
            return False  # a detector's forward pass and NMS take tens of milliseconds whatever the image's size
        tensor = request.inputs[0]
        if tensor.datatype != "BYTES":
            return math.prod(tensor.shape) <= 3 * LIGHT_PIXELS
        if not isinstance(tensor.data, list) or len(tensor.data) > MAX_BATCH:
            return True
        total = 0
        for index, item in enumerate(tensor.data):
            try:  # the header is at the start: decode only that much, the image itself is decoded once, later
                width, height = declared_size(_image_bytes(item, index, HEADER_PEEK_BASE64))
            except (InvalidInput, BadImage):
                return False
            total += width * height
            if total > LIGHT_PIXELS:
                return False
        return True

    def _artifact(self) -> Artifact | CascadeArtifact:
        if self.artifact is None:
            raise InvalidInput(f"model {self.name} is not loaded")
        return self.artifact

    def _v2_predict(self, request: TensorRequest) -> Answer:
        if len(request.inputs) != 1:
            raise InvalidInput(f"expected exactly one input tensor (got {len(request.inputs)})")
        settings = self._detection_request(request.parameters)
        return self._answer(self._v2_tensor(request.inputs[0]), settings)

    def _v1_predict(self, payload: dict[str, Any]) -> Answer:
        parameters = payload.get("parameters", {})
        if not isinstance(parameters, dict):
            raise InvalidInput("parameters must be a JSON object")
        settings = self._detection_request(parameters)
        return self._answer(self._v1_tensor(payload["instances"]), settings)

    def _answer(self, batch: Batch, settings: DetectionRequest | None) -> Answer:
        answer: Answer = self.responses.answer(self._artifact(), batch.tensor, batch.sizes, settings, batch.full)
        if self.capture is not None and batch.originals is not None:
            self._offer_captures(batch.originals, answer, settings)
        return answer

    def _offer_captures(self, originals: list[bytes | np.ndarray], answer: Answer,
                        settings: DetectionRequest | None) -> None:
        """Offer the images the model was unsure of to the capture store (opt-in; the store's limits decide)."""
        assert self.capture is not None
        classes = self._artifact().classes
        for index, original in enumerate(originals):
            reason, detail = self.responses.capture(answer, index, classes, settings, self.capture.settings)
            if reason is not None:
                ood = round(float(answer.ood_scores[index]), 4)
                self.capture.offer(original, {"reason": reason, "ood_score": ood, **detail})

    def _detection_request(self, parameters: dict[str, Any]) -> DetectionRequest | None:
        """A detector's per-request `score_threshold` (0..1, calibrated), `nms_iou` (0.05..1) and `max_detections`
        (1 up to the spec's); the spec's values where a request gives none. Anything else is refused."""
        artifact = self._artifact()
        if artifact.detection is None:
            return None
        default = artifact.default_request()
        score = _bounded(parameters, "score_threshold", default.score_threshold, 0.0, 1.0)
        iou = _bounded(parameters, "nms_iou", default.nms_iou, 0.05, 1.0)
        most = artifact.detection.decoding.max_detections
        count = parameters.get("max_detections", most)
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= most:
            raise InvalidInput(f"parameters.max_detections must be a whole number 1..{most}")
        return DetectionRequest(score, iou, count)

    # -- inputs --------------------------------------------------------------------------------------------

    def _images_from_bytes(self, items: list[Any]) -> Batch:
        """Encoded images, one at a time: a request holds one full-size decoded image at most (a tiled detector's
        request holds them all, up to TILED_REQUEST_PIXELS)."""
        artifact = self._artifact()
        keep_full = self.responses.needs_full_images(artifact)
        images, sizes, originals, full = [], [], [], []
        for index, item in enumerate(items):
            data = _image_bytes(item, index)
            try:
                rgb = artifact.decode(data)
            except BadImage as exc:
                raise InvalidInput(f"input {index}: {exc}") from None
            images.append(artifact.fit(rgb))
            sizes.append(rgb.size)
            if keep_full:
                full.append(np.asarray(rgb, dtype=np.uint8))
            if artifact.tiled:
                _check_tiled(artifact, sizes)
            if self.capture is not None:
                originals.append(data)
        return Batch(artifact.normalise(np.stack(images)), sizes, originals if self.capture is not None else None,
                     full if keep_full else None)

    def _pixels(self, array: np.ndarray) -> Batch:
        if array.ndim != 4 or array.shape[-1] != 3 or min(array.shape[1:3]) < 1:
            raise InvalidInput(f"uint8 pixels must be N x H x W x 3 (got shape {list(array.shape)})")
        self._artifact().limits.check(int(array.shape[2]), int(array.shape[1]))
        sizes = [(int(array.shape[2]), int(array.shape[1]))] * len(array)
        pixels = np.ascontiguousarray(array, dtype=np.uint8)
        if self._artifact().tiled:
            _check_tiled(self._artifact(), sizes)
        keep_full = self.responses.needs_full_images(self._artifact())
        return Batch(self._artifact().normalise(pixels), sizes, list(pixels) if self.capture is not None else None,
                     list(pixels) if keep_full else None)

    def _check_batch(self, count: int) -> None:
        if not 1 <= count <= MAX_BATCH:
            raise InvalidInput(f"a request holds 1 to {MAX_BATCH} images (got {count})")

    def _v2_tensor(self, tensor: Tensor) -> Batch:
        self._check_batch(tensor.shape[0] if tensor.shape else 0)
        if tensor.datatype == "BYTES":
            if len(tensor.shape) != 1:
                raise InvalidInput(f"BYTES input must have shape [N] (got {tensor.shape})")
            items = tensor.data if tensor.binary else _flat(tensor.data, tensor.shape[0])
            return self._images_from_bytes(items)
        if tensor.datatype == "UINT8":
            return self._pixels(_numbers(tensor, 0, 255))
        if tensor.datatype == "FP32":
            height, width = self._artifact().input_hw()
            array = _numbers(tensor)
            if array.shape[1:] != (3, height, width):
                raise InvalidInput(f"FP32 input must be normalised N x 3 x {height} x {width} (got {tensor.shape})")
            if not np.isfinite(array).all():
                raise InvalidInput("FP32 input holds NaN or infinite values")
            return Batch(array.astype(np.float32), None)  # normalised floats: not an image to capture
        raise InvalidInput(f"unsupported datatype {tensor.datatype}: send BYTES (encoded images), UINT8 pixels "
                           "or normalised FP32")

    def _v1_tensor(self, instances: list[Any]) -> Batch:
        self._check_batch(len(instances))
        if all(isinstance(i, dict) for i in instances):
            encoded = [(i.get("image_bytes") or i).get("b64") if isinstance(i.get("image_bytes") or i, dict)
                       else None for i in instances]
            if not all(isinstance(e, str) for e in encoded):
                raise InvalidInput('each instance is {"b64": "<base64 image>"} or {"image_bytes": {"b64": ...}}')
            return self._images_from_bytes(encoded)
        try:
            array = np.asarray(instances)
        except ValueError:
            raise InvalidInput("instances must all have the same shape") from None
        if array.dtype.kind not in "iuf" or array.size == 0 or array.min() < 0 or array.max() > 255:
            raise InvalidInput("pixel instances must be numbers 0..255 in H x W x 3 lists")
        return self._pixels(array)

    def _check_outputs(self, request: TensorRequest) -> None:
        unknown = [o.name for o in request.outputs or [] if o.name not in self.responses.names]
        if unknown:
            raise InvalidInput(f"unknown output(s) {', '.join(map(repr, unknown[:4]))}; this model has "
                               f"{', '.join(self.responses.names)}")

    # -- outputs -------------------------------------------------------------------------------------------

    def _v2_response(self, request: TensorRequest, result: Answer) -> InferResponse:
        outputs = self.responses.v2_outputs(result, self._artifact().classes)
        requested = None if request.outputs is None else [
            KServeRequestedOutput(o.name, {"binary_data": o.binary}) for o in request.outputs]
        return InferResponse(request.id or str(uuid.uuid4()), self.name, outputs,
                             model_version=self._artifact().version,
                             parameters={"classes": ",".join(self._artifact().classes)},
                             use_binary_outputs=request.parameters.get("binary_data_output") is True,
                             requested_outputs=requested)

    def _v1_response(self, result: Answer) -> dict[str, Any]:
        return {"predictions": self.responses.v1_predictions(result, self._artifact().classes)}


def _image_bytes(item: Any, index: int, prefix: int | None = None) -> bytes:
    """JSON sends base64 strings; the binary extension sends raw encoded bytes (or base64 of them). With
    `prefix`, only the first `prefix` characters or bytes are decoded (a multiple of 4 keeps base64 whole)."""
    if isinstance(item, str | bytes | bytearray) and prefix is not None:
        item = item[:prefix]
    if isinstance(item, str):
        try:
            return base64.b64decode(item.encode("ascii"), validate=True)
        except (binascii.Error, ValueError, UnicodeEncodeError):
            raise InvalidInput(f"input {index}: not valid base64") from None
    if isinstance(item, bytes | bytearray):
        try:
            return base64.b64decode(bytes(item), validate=True)
        except (binascii.Error, ValueError):
            return bytes(item)  # raw encoded image bytes
    raise InvalidInput(f"input {index}: expected a base64-encoded image")


def _check_tiled(artifact: Artifact, sizes: list[tuple[int, int]]) -> None:
    """A tiled detector's request within TILED_REQUEST_PIXELS and TILED_REQUEST_TILES (checked as images are
    decoded, so an oversized request stops at the first image past the limit)."""
    total = sum(width * height for width, height in sizes)
    if total > TILED_REQUEST_PIXELS:
        raise InvalidInput(f"a tiled detector takes at most {TILED_REQUEST_PIXELS / 1e6:g} megapixels per request "
                           f"(these images hold {total / 1e6:.1f} so far); send fewer images per request")
    tiling = artifact.detection.decoding.tiling if artifact.detection is not None else None
    assert tiling is not None, "called for a tiled detector only"
    tiles = sum(tiling.tile_count(width, height) for width, height in sizes)
    if tiles > TILED_REQUEST_TILES:
        raise InvalidInput(f"these images need {tiles} tiles; a request to this detector may need at most "
                           f"{TILED_REQUEST_TILES}: send fewer or smaller images per request")


def _bounded(parameters: dict[str, Any], name: str, default: float, low: float, high: float) -> float:
    value = parameters.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) \
            or not low <= value <= high:
        raise InvalidInput(f"parameters.{name} must be a number {low:g}..{high:g}")
    return float(value)


def _flat(data: list[Any], count: int) -> list[Any]:
    """JSON tensor data may be nested ([[...]]) or flat; BYTES [N] must give N elements."""
    flat = data[0] if len(data) == 1 and isinstance(data[0], list) else data
    if len(flat) != count:
        raise InvalidInput(f"shape [{count}] needs {count} elements (got {len(flat)})")
    return flat


def _numbers(tensor: Tensor, low: float | None = None, high: float | None = None) -> np.ndarray:
    """The tensor's numbers as an array of its shape; values outside [low, high] are refused, not wrapped."""
    if tensor.binary:
        return tensor.data
    try:
        array = np.asarray(tensor.data)
    except (ValueError, TypeError):
        raise InvalidInput(f"input '{tensor.name}': data must be numbers in a flat or nested list") from None
    if array.dtype.kind not in "iuf" or array.size != int(np.prod(tensor.shape)):
        raise InvalidInput(f"input '{tensor.name}': needs {int(np.prod(tensor.shape))} numbers for shape "
                           f"{tensor.shape} (got {array.size} {array.dtype.kind}-kind values)")
    if low is not None and array.size and (array.min() < low or array.max() > high or
                                           (array.dtype.kind == "f" and not np.all(array == np.round(array)))):
        raise InvalidInput(f"input '{tensor.name}': {tensor.datatype} values must be whole numbers {low:g}..{high:g}")
    return array.reshape(tensor.shape)
