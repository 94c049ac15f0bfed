"""HTTP transport for the two inference routes, as plain ASGI in front of any other app.

``POST /v1/models/{name}:predict`` and ``POST /v2/models/{name}[/versions/{v}]/infer`` are decoded
here and answered through the seam (``inference.infer``); every other request passes through to
the app behind (KServe's FastAPI app in the server) unchanged, its body limited the same way.
Nothing here imports KServe, so a front end without it serves the same routes.

Why not KServe's routes: they run each request through FastAPI dependency injection and pydantic
(the larger part of their per-request cost), answer a JSON body sent as a form (``curl -d``) with
500, reject ``tritonclient`` JSON requests, and have no request size limit.
"""

from __future__ import annotations

import orjson

from .codec import INFERENCE_HEADER_LENGTH, decode_v1, decode_v2_rest, encode_v1, encode_v2_rest, loads_json
from .errors import INTERNAL, RequestTooLarge, describe, status_of
from .inference import Registry, infer

V1_PREFIX, V1_SUFFIX = "/v1/models/", ":predict"
V2_PREFIX, V2_SUFFIX = "/v2/models/", "/infer"
JSON_HEADERS = [(b"content-type", b"application/json")]


class InferenceRoutes:
    def __init__(self, app, registry: Registry, max_body_bytes: int):
        self.app = app
        self.registry = registry
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        route = _match(scope["path"])
        if route is None or _is_cloudevent(headers):
            # KServe's route does the CloudEvents decoding and encoding; it gets the body we read.
            try:
                body = await self._read_body(receive, headers)
            except RequestTooLarge as exc:
                return await _respond(send, 413, _error(str(exc)))
            return await self.app(scope, _replay(body, receive), send)
        protocol, name, version = route

        async def read():
            body = await self._read_body(receive, headers)
            if protocol == "v1":
                return decode_v1(loads_json(body))
            return decode_v2_rest(body, headers.get(INFERENCE_HEADER_LENGTH))

        encode = encode_v1 if protocol == "v1" else encode_v2_rest
        try:
            body, response_headers = await infer(self.registry, name, version, read, protocol=protocol, encode=encode)
        except Exception as exc:
            status = status_of(exc)
            message = f"model {name} failed: {describe(exc)}" if status is INTERNAL else describe(exc)
            return await _respond(send, status.http, _error(message))
        await _respond(send, 200, body, response_headers)

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


def _match(path: str) -> tuple[str, str, str | None] | None:
    if path.startswith(V1_PREFIX) and path.endswith(V1_SUFFIX):
        return "v1", path[len(V1_PREFIX) : -len(V1_SUFFIX)], None
    if path.startswith(V2_PREFIX) and path.endswith(V2_SUFFIX):
        name = path[len(V2_PREFIX) : -len(V2_SUFFIX)]
        name, sep, version = name.partition("/versions/")
        if "/" not in name and "/" not in version:
            return "v2", name, version if sep else None
    return None


def _is_cloudevent(headers: dict) -> bool:
    return "ce-specversion" in headers or headers.get("content-type", "").startswith("application/cloudevents")


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
