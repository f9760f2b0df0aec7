"""The model server's ASGI app: KServe's data plane, model and endpoints, with only the routes a client needs.

KServe's `ModelServer` binds 0.0.0.0 whatever it is told, always mounts the model-repository endpoints
(anyone could unload the model while health stayed green) and reports ready with no model loaded. This
app is built from KServe's own parts (`DataPlane`, `ModelRepository`, the V1/V2 endpoint handlers, its
error handlers) minus those endpoints, with strict OIP v2 parsing (serving.protocol), readiness that is
false whenever the model cannot answer, a bound on requests in flight (each holds at most one body), and
errors that are short JSON, never a payload echo.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Any

import orjson
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from kserve import errors as kserve_errors
from kserve.model_repository import ModelRepository
from kserve.protocol.dataplane import DataPlane
from kserve.protocol.rest.server import metrics_handler
from kserve.protocol.rest.v1_endpoints import V1Endpoints
from kserve.protocol.rest.v2_endpoints import V2Endpoints
from starlette.exceptions import HTTPException

from runtime.artifact import Artifact, PixelLimits
from runtime.cascade import CascadeArtifact, is_cascade
from serving.middleware import BodySizeLimit, BodyTooLarge, JsonByDefault, VersionedPaths
from serving.model import VisionModel
from serving.protocol import HEADER_LENGTH, TensorRequest, parse_request

CONFIG_ENV = "AUTODL_SERVING_CONFIG"
LOG_LINE_LIMIT = 2000
PARSE_OFF_LOOP_BYTES = 256 * 1024
"""Bodies larger than this are parsed on a worker thread so the event loop keeps answering probes."""
log = logging.getLogger("autodl.serving")


@dataclass(frozen=True)
class ServingConfig:
    model_name: str
    model_dirs: tuple[str, ...]
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    """Server processes, each with its own copy of the model (uvicorn workers)."""
    threads: int = 1
    """ONNX Runtime intra-op threads per inference."""
    inference_threads: int = 1
    """Requests decoded and inferred at once per process, off the event loop."""
    max_body_bytes: int = 8 * 1024 * 1024
    max_image_pixels: int = 40_000_000
    max_image_side_px: int = 16_384
    abstain_on_ood: bool = True
    capture: str | None = None
    """The spec's `serving.capture` as JSON (serving.capture.CaptureSettings); None captures nothing."""

    def to_env(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_env(cls) -> ServingConfig:
        values = json.loads(os.environ[CONFIG_ENV])
        return cls(**{**values, "model_dirs": tuple(values["model_dirs"])})

    @property
    def in_flight(self) -> int:
        """Requests whose bodies may be held at once per process; more wait unread in their sockets."""
        return 2 * self.inference_threads + 2


def create_app(config: ServingConfig | None = None) -> FastAPI:
    """Load the model and build the app (uvicorn calls this in every worker process)."""
    config = config or ServingConfig.from_env()
    cap_log_lines(LOG_LINE_LIMIT)
    limits = PixelLimits(config.max_image_pixels, config.max_image_side_px)
    folders = [Path(d) for d in config.model_dirs]
    loader = CascadeArtifact.load if is_cascade(folders) else Artifact.load  # a cascade's release holds two bundles
    artifact = loader(folders, threads=config.threads, abstain_on_ood=config.abstain_on_ood, limits=limits)
    capture = None
    if config.capture:
        from serving.capture import Capturer, CaptureSettings, open_store

        settings = CaptureSettings.from_json(config.capture)
        capture = Capturer(settings, open_store(settings.destination), f"{config.model_name}:{artifact.version}")
    model = VisionModel(config.model_name, artifact, config.inference_threads, capture)
    model.enable_latency_logging = False  # one log line per request costs more than the model at small sizes
    registry = ModelRepository()
    registry.update(model)
    app = FastAPI(title="autodl model server", openapi_url=None, docs_url=None, redoc_url=None)
    _Routes(DataPlane(model_registry=registry), model, asyncio.Semaphore(config.in_flight)).register(app)
    app.state.model = model
    _add_error_handlers(app)
    app.add_middleware(JsonByDefault)
    app.add_middleware(VersionedPaths, versions={config.model_name: artifact.version})
    app.add_middleware(BodySizeLimit, max_bytes=config.max_body_bytes)
    return app


class _Routes:
    """The routes served: health, metadata, inference. No model-repository (load/unload) endpoints."""

    def __init__(self, dataplane: DataPlane, model: VisionModel, in_flight: asyncio.Semaphore):
        self.dataplane, self.model, self.in_flight = dataplane, model, in_flight
        self.v1, self.v2 = V1Endpoints(dataplane), V2Endpoints(dataplane)

    def register(self, app: FastAPI) -> None:
        app.add_api_route("/", self.live_v1, methods=["GET"])
        app.add_api_route("/metrics", metrics_handler, methods=["GET"])
        app.add_api_route("/v1/models", self.v1.models, methods=["GET"])
        app.add_api_route("/v1/models/{model_name}", self.v1.model_ready, methods=["GET"])
        app.add_api_route("/v1/models/{model_name}:predict", self.predict_v1, methods=["POST"])
        for prefix in ("/v2", "/v2/"):
            app.add_api_route(prefix, self.server_metadata, methods=["GET"])
        app.add_api_route("/v2/health/live", self.live, methods=["GET"])
        app.add_api_route("/v2/health/ready", self.ready, methods=["GET"])
        app.add_api_route("/v2/models", self.v2.models, methods=["GET"])
        app.add_api_route("/v2/models/{model_name}", self.model_metadata, methods=["GET"])
        app.add_api_route("/v2/models/{model_name}/ready", self.v2.model_ready, methods=["GET"])
        app.add_api_route("/v2/models/{model_name}/infer", self.infer, methods=["POST"])

    async def live_v1(self) -> dict[str, str]:
        return {"status": "alive"}

    async def live(self) -> dict[str, bool]:
        return {"live": True}

    async def ready(self) -> Response:
        """Ready only while the served model is registered and loaded: a pod that cannot answer must leave
        the Service's endpoints."""
        registered = self.dataplane.model_registry.get_model(self.model.name) is self.model
        if registered and self.model.ready and self.model.artifact is not None:
            return _json({"ready": True})
        return JSONResponse({"error": f"model {self.model.name} is not loaded"}, HTTPStatus.SERVICE_UNAVAILABLE)

    async def server_metadata(self) -> dict[str, Any]:
        return {"name": "autodl", "version": _version(), "extensions": ["binary_tensor_data"]}

    async def model_metadata(self, model_name: str) -> dict[str, Any]:
        model = self._model(model_name)
        return {"name": model.name, "versions": [model._artifact().version], "platform": "onnxruntime_onnx",
                "inputs": model.get_input_types(), "outputs": model.get_output_types()}

    async def infer(self, request: Request, model_name: str) -> Response:
        self._model(model_name)
        async with self.in_flight:
            body = await request.body()
            header_length = request.headers.get(HEADER_LENGTH)
            parsed: TensorRequest = (await asyncio.to_thread(parse_request, body, header_length)
                                     if len(body) > PARSE_OFF_LOOP_BYTES else parse_request(body, header_length))
            del body
            response, headers = await self.dataplane.infer(model_name, parsed, dict(request.headers))
        encoded, more_headers = self.dataplane.encode(model_name, response, dict(request.headers), {})
        headers = {k: v for k, v in {**headers, **more_headers}.items() if k.lower() not in ("content-length",
                                                                                             "content-type")}
        if isinstance(encoded, bytes):
            return Response(encoded, headers=headers, media_type="application/octet-stream")
        return _json(encoded, headers=headers)

    async def predict_v1(self, model_name: str, request: Request) -> Any:
        self._model(model_name)
        async with self.in_flight:
            return await self.v1.predict(model_name, request)

    def _model(self, name: str) -> VisionModel:
        if name != self.model.name or self.dataplane.model_registry.get_model(name) is None:
            raise kserve_errors.ModelNotFound(name)
        if not self.model.ready:
            raise kserve_errors.ModelNotReady(name)
        return self.model


def _json(content: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """orjson serialises numpy-derived lists several times faster than the standard library."""
    return Response(orjson.dumps(content), status, headers=headers, media_type="application/json")


def _add_error_handlers(app: FastAPI) -> None:
    """Every error is `{"error": "<short message>"}`, as the Open Inference Protocol specifies."""
    app.add_exception_handler(kserve_errors.InvalidInput, kserve_errors.invalid_input_handler)
    app.add_exception_handler(kserve_errors.ModelNotFound, kserve_errors.model_not_found_handler)
    app.add_exception_handler(kserve_errors.ModelNotReady, kserve_errors.model_not_ready_handler)
    app.add_exception_handler(BodyTooLarge, _too_large)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, _internal_error)


async def _too_large(_: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"error": str(exc)}, HTTPStatus.REQUEST_ENTITY_TOO_LARGE)


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    fields = sorted({".".join(str(p) for p in error.get("loc", ())) for error in exc.errors()})  # type: ignore[attr-defined]
    return JSONResponse({"error": f"invalid request ({', '.join(fields)[:200]})"}, HTTPStatus.BAD_REQUEST)


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    return JSONResponse({"error": str(exc.detail)[:200]}, exc.status_code, headers=exc.headers)


async def _internal_error(_: Request, exc: Exception) -> JSONResponse:
    log.error("internal error: %s: %s", type(exc).__name__, str(exc)[:500])
    return JSONResponse({"error": "internal error; the server log has the details"},
                        HTTPStatus.INTERNAL_SERVER_ERROR)


def cap_log_lines(limit: int) -> None:
    """Cut every log message to `limit` characters, whoever logs it: a message must never carry a payload."""
    base = logging.getLogRecordFactory()
    if getattr(base, "autodl_capped", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = base(*args, **kwargs)
        message = record.getMessage()
        if len(message) > limit:
            record.msg, record.args = f"{message[:limit]}... [{len(message)} characters, cut]", None
        return record

    factory.autodl_capped = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("autodl")
    except PackageNotFoundError:
        return "0"
