"""ASGI middleware the model server adds in front of its app.

BodySizeLimit: KServe's handlers read whole bodies into memory and set no
limit; an oversized upload (declared or chunked) must get a 413 with a JSON
error before it is buffered, not exhaust the pod. JsonByDefault: common clients
send JSON without a JSON content type (curl -d says form-urlencoded, Triton's
client says nothing), which KServe's V1 handler then refuses to parse. VersionedPaths: the Open Inference Protocol
names model versions in paths (`/v2/models/<m>/versions/<v>/...`), which KServe
answers with 501; this server serves exactly one version (the artifact's
digest) and routes those paths to it, or answers 404 for another version.
Written here because neither KServe nor Starlette ships either.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class BodyTooLarge(Exception):
    """Raised from `receive` once a body passes the limit; the app answers it with a 413."""


class BodySizeLimit:
    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._reject(send)
            return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                raise BodyTooLarge(f"request body larger than {self.max_bytes} bytes")
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await self._reject(send)

    async def _reject(self, send: Send) -> None:
        await json_error(send, 413, f"request body larger than {self.max_bytes} bytes")


async def json_error(send: Send, status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


NOT_JSON_BY_INTENT = (b"application/x-www-form-urlencoded", b"text/plain", b"")


class JsonByDefault:
    """A POST to a V1 predict path whose content type is missing, form-urlencoded or plain text is read as
    JSON (the body then either parses or gets the usual 400)."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("method") == "POST" and scope.get("path", "").endswith(":predict"):
            headers = [(k, v) for k, v in scope.get("headers") or [] if k != b"content-type"]
            declared = dict(scope.get("headers") or []).get(b"content-type", b"").split(b";")[0].strip().lower()
            if declared in NOT_JSON_BY_INTENT:
                scope = {**scope, "headers": [*headers, (b"content-type", b"application/json")]}
        await self.app(scope, receive, send)


_VERSIONED = re.compile(r"^/v2/models/(?P<model>[^/]+)/versions/(?P<version>[^/]+)(?P<rest>/.*)?$")


class VersionedPaths:
    def __init__(self, app: ASGIApp, versions: dict[str, str]):
        self.app, self.versions = app, versions
        """Model name -> the one version it serves."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = _VERSIONED.match(scope.get("path", "")) if scope["type"] == "http" else None
        if match is None:
            await self.app(scope, receive, send)
            return
        model, version, rest = match["model"], match["version"], match["rest"] or ""
        if model in self.versions and version != self.versions[model]:
            await json_error(send, 404, f"model {model} has no version {version} (it serves {self.versions[model]})")
            return
        path = f"/v2/models/{model}{rest}"
        await self.app({**scope, "path": path, "raw_path": path.encode()}, receive, send)
