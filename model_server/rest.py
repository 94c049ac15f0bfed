"""HTTP transport of the data plane, as plain ASGI in front of any other app.

Answered here, through the core (``inference.py``):

- ``POST /v1/models/{name}:predict``, ``POST /v2/models/{name}[/versions/{v}]/infer``: inference,
  through the seam (``inference.infer``); CloudEvents (binary or structured mode) on both, answered
  as CloudEvents (``cloudevent.py``; KServe's own routes answer them on V1 predict only);
- ``GET /v2/health/live``, ``/v2/health/ready``, ``/v2/models/{name}[/versions/{v}][/ready]``
  (also ``?model_version=``), ``/v1/models/{name}``: health, readiness and metadata, for every
  served version (KServe's own routes answer 501 whenever a version is named);
- ``POST /v2/repository/index``, ``/v2/repository/models/{name}/load`` and ``/unload``: the
  repository API (``repository.py``), only when enabled, with its token (``management.py``); 404
  for a model that does not exist (KServe answers 503).

Every other request passes through to the app behind (KServe's FastAPI app in the server)
unchanged, its body limited the same way. Nothing here imports KServe, so a front end without it
serves the same routes.

Why not KServe's routes: they run each request through FastAPI dependency injection and pydantic
(the larger part of their per-request cost), answer a JSON body sent as a form (``curl -d``) with
500, reject ``tritonclient`` JSON requests, and have no request size limit.
"""

from __future__ import annotations

import re
from dataclasses import replace
from urllib.parse import parse_qs

import orjson

from . import cloudevent
from .codec import INFERENCE_HEADER_LENGTH, encode_v1, encode_v2_rest
from .errors import INTERNAL, ModelNotReady, RequestTooLarge, describe, status_of
from .inference import Registry, ServingState, infer, model_metadata, model_ready, server_ready
from .management import ManagementAccess
from .offload import BodyDecoder

V1_PREFIX, V1_SUFFIX = "/v1/models/", ":predict"
V2_PREFIX, V2_SUFFIX = "/v2/models/", "/infer"
JSON_HEADERS = [(b"content-type", b"application/json")]
V2_MODEL = re.compile(r"/v2/models/(?P<name>[^/]+)(?:/versions/(?P<version>[^/]+))?(?P<ready>/ready)?")
V1_MODEL = re.compile(r"/v1/models/(?P<name>[^/:]+)")
REPOSITORY_MODEL = re.compile(r"/v2/repository/models/(?P<name>[^/]+)/(?P<action>load|unload)")
# JSON bodies past this size are decoded in a helper process (offload.py; docs/architecture.md).
OFFLOAD_BYTES = 256 * 1024


class DataPlaneRoutes:
    def __init__(
        self,
        app,
        registry: Registry,
        max_body_bytes: int,
        state: ServingState | None = None,
        management: ManagementAccess | None = None,
    ):
        self.app = app
        self.registry = registry
        self.max_body_bytes = max_body_bytes
        self.state = state or ServingState()
        self.management = management or ManagementAccess()
        self.decoder = BodyDecoder(OFFLOAD_BYTES)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        method, path = scope["method"], scope["path"]
        if method == "GET":
            try:
                answer = self._get(path, scope.get("query_string", b""))
            except Exception as exc:
                return await _respond(send, status_of(exc).http, _error(describe(exc)))
            if answer is not None:
                return await _respond(send, answer[0], orjson.dumps(answer[1]))
            return await self.app(scope, receive, send)
        if method != "POST":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if path.startswith("/v2/repository/"):
            try:
                await self._read_body(receive, headers)  # Triton's load options: none apply here
                answer = await self._repository(path, headers)
            except Exception as exc:
                return await _respond(send, status_of(exc).http, _error(describe(exc)))
            if answer is not None:
                return await _respond(send, 200, orjson.dumps(answer))
            return await _respond(send, 404, _error(f"no repository route {path}"))
        route = _match(path)
        if route is None:
            try:
                body = await self._read_body(receive, headers)
            except Exception as exc:
                return await _respond(send, status_of(exc).http, _error(describe(exc)))
            # KServe's route does the rest (and CloudEvents); it gets the body we read.
            return await self.app(scope, _replay(body, receive), send)
        protocol, name, version = route
        if cloudevent.is_http_event(headers):
            read, encode = self._cloudevent_codec(protocol, name, receive, headers)
        else:

            async def read():
                body = await self._read_body(receive, headers)
                return await self.decoder.decode(protocol, body, headers.get(INFERENCE_HEADER_LENGTH))

            encode = encode_v1 if protocol == "v1" else encode_v2_rest
        try:
            body, response_headers = await infer(self.registry, name, version, read, protocol=protocol, encode=encode)
        except Exception as exc:
            status = status_of(exc)
            message = f"model {name} failed: {describe(exc)}" if status is INTERNAL else describe(exc)
            return await _respond(send, status.http, _error(message))
        await _respond(send, 200, body, response_headers)

    def close(self) -> None:
        self.decoder.close()

    def _get(self, path: str, query: bytes) -> tuple[int, dict] | None:
        """(status, body) for the health, readiness and metadata routes; None for any other path."""
        if path == "/v2/health/live":
            return 200, {"live": True}
        if path == "/v2/health/ready":
            if server_ready(self.registry, self.state):
                return 200, {"ready": True}
            return 503, {"error": "the server is not ready (no model loaded, or shutting down)", "ready": False}
        match = V2_MODEL.fullmatch(path) or V1_MODEL.fullmatch(path)
        if match is None:
            return None
        name = match["name"]
        version = match.groupdict().get("version") or _query_version(query)
        if match.re is V2_MODEL and not match["ready"]:
            return 200, model_metadata(self.registry, name, version)
        if not model_ready(self.registry, name, version, self.state):
            raise ModelNotReady(f"Model with name {name} is not ready.")
        return 200, {"name": name, "ready": True}

    async def _repository(self, path: str, headers: dict):
        """The repository API (repository.py): index, load (or reload), unload."""
        self.management.check(headers.get("authorization"))
        if path == "/v2/repository/index":
            return self.registry.index()
        match = REPOSITORY_MODEL.fullmatch(path)
        if match is None:
            return None
        name, action = match["name"], match["action"]
        await (self.registry.load(name) if action == "load" else self.registry.unload(name))
        return {"name": name, action: True}

    def _cloudevent_codec(self, protocol: str, name: str, receive, headers: dict):
        """A CloudEvent whose data is the route's request; the reply is a CloudEvent in the same
        mode (``cloudevent.reply``). KServe answers CloudEvents on V1 predict only."""
        event = None

        async def read():
            nonlocal event
            event = cloudevent.from_http(headers, await self._read_body(receive, headers))
            header_length = None if event.structured else headers.get(INFERENCE_HEADER_LENGTH)
            return await self.decoder.decode(protocol, event.data, header_length)

        def encode(request, response):
            if protocol == "v1":
                data, _ = encode_v1(request, response)
            else:  # event data is JSON: binary outputs are answered as JSON
                data, _ = encode_v2_rest(replace(request, binary_outputs=set()), response)
            return cloudevent.to_http(cloudevent.reply(event, name, data))

        return read, encode

    async def _read_body(self, receive, headers: dict) -> bytes:
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            raise RequestTooLarge(f"request body exceeds {self.max_body_bytes} bytes")
        chunks, size = [], 0
        while True:
            message = await receive()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise RequestTooLarge(f"request body exceeds {self.max_body_bytes} bytes")
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


def _query_version(query: bytes) -> str | None:
    values = parse_qs(query.decode("latin-1")).get("model_version")
    return values[0] if values else None


def _match(path: str) -> tuple[str, str, str | None] | None:
    if path.startswith(V1_PREFIX) and path.endswith(V1_SUFFIX):
        return "v1", path[len(V1_PREFIX) : -len(V1_SUFFIX)], None
    if path.startswith(V2_PREFIX) and path.endswith(V2_SUFFIX):
        name = path[len(V2_PREFIX) : -len(V2_SUFFIX)]
        name, sep, version = name.partition("/versions/")
        if "/" not in name and "/" not in version:
            return "v2", name, version if sep else None
    return None


def _replay(body: bytes, receive):
    sent = False

    async def replayed():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # after the body: wait for the disconnect as usual

    return replayed


def _error(message: str) -> bytes:
    return orjson.dumps({"error": message})


async def _respond(send, status: int, body: bytes, headers: dict | None = None) -> None:
    raw_headers = [(k.encode(), v.encode()) for k, v in headers.items()] if headers else list(JSON_HEADERS)
    raw_headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})
